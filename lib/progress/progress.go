// Package progress shows what farm-build's jobs are doing on stderr: every
// build line prefixed [platform@node] (plain), or on a terminal one live line
// per running job (phase, step N/M, bytes and rate) under the lines that
// stay: log lines, and one summary line per job when it ends.
package progress

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"

	"github.com/farm-build/farm/lib/stage"
)

// Job is one job's reporter. All methods are safe for concurrent use.
type Job interface {
	// Phase says what the job does now: "uploading", "building", ...
	Phase(phase string)
	// Log is one line of build output (or a farm note about the job).
	Log(line string)
	// Watch says the current phase moves bytes: bytes reports how many so
	// far (the view shows them and the rate until the next phase).
	Watch(bytes func() int64)
	// Done ends the job's line: err nil means success, summary says what
	// was achieved.
	Done(summary string, err error)
}

// View makes a Job per platform and node.
type View interface {
	Job(platform, node string) Job
	// Writer takes log lines: on a terminal they go above the live lines,
	// never into them.
	Writer() io.Writer
	// Close waits for the last redraw (tty) and releases the terminal.
	Close()
}

// New picks the view by mode: "auto" (tty on a terminal), "tty" or
// "plain". width is the terminal's (0: unknown, 80 is assumed).
func New(mode string, w io.Writer, isTerminal bool, width int) (View, error) {
	switch mode {
	case "plain":
		return NewPlain(w), nil
	case "tty":
		return NewTTY(w, width), nil
	case "auto", "":
		if isTerminal {
			return NewTTY(w, width), nil
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

// Writer implements View: log lines never land inside a build line.
func (p *Plain) Writer() io.Writer { return plainWriter{p} }

type plainWriter struct{ p *Plain }

// TerminalWidth implements stage.Terminal: logs are sentences when the
// plain view writes to a terminal.
func (w plainWriter) TerminalWidth() (int, bool) { return stage.TerminalWidth(w.p.w) }

func (w plainWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.w.Write(b)
}

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
func (j *plainJob) Phase(string)       {}
func (j *plainJob) Watch(func() int64) {}
func (j *plainJob) Log(line string)    { j.p.line(j.prefix + line) }
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
