// Package progress shows what farm-build's jobs are doing on stderr: every
// build line prefixed [platform@node] (plain), or on a terminal one live line
// per job (phase, step N/M, bytes, done or failed) drawn with mpb, the
// progress library containers/image already uses.
package progress

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
)

// Job is one job's reporter. All methods are safe for concurrent use.
type Job interface {
	// Phase says what the job does now: "uploading", "building", ...
	Phase(phase string)
	// Log is one line of build output (or a farm note about the job).
	Log(line string)
	// Done ends the job's line: err nil means success, summary says what
	// was achieved.
	Done(summary string, err error)
}

// View makes a Job per platform and node.
type View interface {
	Job(platform, node string) Job
	// Close waits for the last redraw (tty) and releases the terminal.
	Close()
}

// Mode picks the view: "auto" (tty on a terminal), "tty" or "plain".
func New(mode string, w io.Writer, isTerminal bool) (View, error) {
	switch mode {
	case "plain":
		return NewPlain(w), nil
	case "tty":
		return NewTTY(w), nil
	case "auto", "":
		if isTerminal {
			return NewTTY(w), nil
		}
		return NewPlain(w), nil
	}
	return nil, fmt.Errorf("--progress %q: want auto, tty or plain", mode)
}

// Plain writes whole prefixed lines; lines of concurrent jobs never
// interleave inside a line.
type Plain struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPlain writes to w.
func NewPlain(w io.Writer) *Plain { return &Plain{w: w} }

// Job implements View.
func (p *Plain) Job(platform, node string) Job {
	return &plainJob{p: p, prefix: "[" + platform + "@" + node + "] "}
}

// Close implements View.
func (p *Plain) Close() {}

func (p *Plain) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.w, s+"\n")
}

type plainJob struct {
	p      *Plain
	prefix string
}

// Phases are not printed in plain mode: the build's own lines say as much,
// and logs stay diff-able.
func (j *plainJob) Phase(string)    {}
func (j *plainJob) Log(line string) { j.p.line(j.prefix + line) }
func (j *plainJob) Done(summary string, err error) {
	if err != nil {
		j.p.line(j.prefix + "failed: " + err.Error())
		return
	}
	j.p.line(j.prefix + "done: " + summary)
}

// stepLine matches buildah's "STEP 3/7: RUN ..." lines.
var stepLine = regexp.MustCompile(`^STEP (\d+)/(\d+): `)

// ParseStep returns n and m of a "STEP n/m:" line.
func ParseStep(line string) (n, m int, ok bool) {
	sub := stepLine.FindStringSubmatch(line)
	if sub == nil {
		return 0, 0, false
	}
	n, _ = strconv.Atoi(sub[1])
	m, _ = strconv.Atoi(sub[2])
	return n, m, true
}
