package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-units"
	"github.com/farm-build/farm/lib/stage"
)

// tailLines is how much of a failed build's output the tty view prints:
// enough to see the failing step, not the whole log.
const tailLines = 15

// refresh is how often the live lines are redrawn (elapsed times, rates).
const refresh = 200 * time.Millisecond

// TTY draws one live line per running job at the bottom of the terminal
// and keeps build output off the screen. Everything else goes above the
// live lines, whole: a job's summary line when it ends (and the tail of its
// output when it failed) and log lines (Writer). A job that ended has no
// live line left, so no stale line stays above its summary; no line is as
// wide as the terminal, so none wraps and the redraw stays exact.
type TTY struct {
	w     io.Writer
	width int

	mu    sync.Mutex
	jobs  []*ttyJob // running, in the order they started
	drawn int       // live lines on the screen now
	stop  chan struct{}
	done  chan struct{}
}

// NewTTY draws on w, a terminal width columns wide (0: 80).
func NewTTY(w io.Writer, width int) *TTY {
	if width <= 0 {
		width = 80
	}
	t := &TTY{w: w, width: width, stop: make(chan struct{}), done: make(chan struct{})}
	go t.tick()
	return t
}

func (t *TTY) tick() {
	defer close(t.done)
	tk := time.NewTicker(refresh)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.mu.Lock()
			t.redraw("")
			t.mu.Unlock()
		}
	}
}

// Job implements View.
func (t *TTY) Job(platform, node string) Job {
	j := &ttyJob{t: t, name: "[" + platform + "@" + node + "]", phase: "connecting", start: time.Now(), since: time.Now()}
	t.mu.Lock()
	t.jobs = append(t.jobs, j)
	t.redraw("")
	t.mu.Unlock()
	return j
}

// Close implements View: the live lines go, what was printed stays.
func (t *TTY) Close() {
	select {
	case <-t.stop:
		return
	default:
	}
	close(t.stop)
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	t.jobs = nil
	t.redraw("")
}

// Writer implements View.
func (t *TTY) Writer() io.Writer { return t }

// Write prints p above the live lines, whole lines only, wrapped to the
// terminal (log lines: stage.Logger writes here).
func (t *TTY) Write(p []byte) (int, error) {
	t.above(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TerminalWidth implements stage.Terminal: logs through Write are
// sentences, wrapped to the terminal.
func (t *TTY) TerminalWidth() (int, bool) { return t.width, true }

// above prints text (lines) above the live lines.
func (t *TTY) above(text string) {
	wrapped := t.wrap(text)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.redraw(wrapped)
}

// wrap makes text's lines shorter than the terminal, each ending in "\n".
func (t *TTY) wrap(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		for _, l := range stage.Wrap(line, t.width) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// redraw, under mu, moves to the first live line, clears from there down,
// prints above (whole lines) and then the live lines again, in one write.
func (t *TTY) redraw(above string) {
	if above == "" && t.drawn == 0 && len(t.jobs) == 0 {
		return
	}
	var b strings.Builder
	if t.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA", t.drawn)
	}
	b.WriteString("\r\x1b[J")
	b.WriteString(above)
	for _, j := range t.jobs {
		b.WriteString(fit(j.line(), t.width) + "\n")
	}
	t.drawn = len(t.jobs)
	io.WriteString(t.w, b.String())
}

// fit cuts a live line to less than width runes.
func fit(s string, width int) string {
	r := []rune(s)
	if len(r) < width {
		return s
	}
	return string(r[:width-2]) + "…"
}

// remove ends j's live line, printing text above in its place.
func (t *TTY) remove(j *ttyJob, text string) {
	wrapped := t.wrap(text)
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.jobs {
		if x == j {
			t.jobs = append(t.jobs[:i:i], t.jobs[i+1:]...)
			break
		}
	}
	t.redraw(wrapped)
}

type ttyJob struct {
	t     *TTY
	name  string
	start time.Time

	// mu guards the fields below; taken under t.mu (line), never the
	// other way round.
	mu       sync.Mutex
	phase    string
	since    time.Time // the phase began
	step, of int
	bytes    func() int64
	tail     []string
	ended    bool
}

// line is the job's live line: phase, step or bytes and rate, elapsed.
func (j *ttyJob) line() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	elapsed := time.Since(j.start).Round(100 * time.Millisecond)
	status := j.phase
	switch {
	case j.of > 0 && j.phase == "building":
		status = fmt.Sprintf("building: step %d/%d %s", j.step, j.of, bar(j.step-1, j.of, 20))
	case j.bytes != nil:
		n := j.bytes()
		rate := float64(n) / max(time.Since(j.since).Seconds(), 0.001)
		status = fmt.Sprintf("%s: %s, %s/s", j.phase, units.BytesSize(float64(n)), units.BytesSize(rate))
	}
	return fmt.Sprintf("%s %s %s", j.name, status, elapsed)
}

// bar draws done of total in width cells.
func bar(done, total, width int) string {
	n := min(max(done*width/max(total, 1), 0), width)
	head := ""
	if n < width {
		head = ">"
	}
	return "[" + strings.Repeat("=", n) + head + strings.Repeat("-", max(width-n-len(head), 0)) + "]"
}

func (j *ttyJob) Phase(phase string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.phase, j.since, j.bytes = phase, time.Now(), nil
}

// Watch implements Job.
func (j *ttyJob) Watch(bytes func() int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.bytes = bytes
}

func (j *ttyJob) Log(line string) {
	n, m, isStep := ParseStep(line)
	j.mu.Lock()
	defer j.mu.Unlock()
	if isStep {
		j.step, j.of = n, m
	}
	j.tail = append(j.tail, line)
	if len(j.tail) > tailLines {
		j.tail = j.tail[1:]
	}
}

// Done replaces the job's live line with its summary line, after the tail
// of its output when it failed.
func (j *ttyJob) Done(summary string, err error) {
	j.mu.Lock()
	if j.ended {
		j.mu.Unlock()
		return
	}
	j.ended = true
	took := time.Since(j.start).Round(100 * time.Millisecond)
	var text []string
	if err != nil {
		for _, l := range j.tail {
			text = append(text, j.name+" "+l)
		}
		text = append(text, fmt.Sprintf("%s FAILED after %s: %v", j.name, took, err))
	} else {
		text = append(text, fmt.Sprintf("%s done in %s: %s", j.name, took, summary))
	}
	j.mu.Unlock()
	j.t.remove(j, strings.Join(text, "\n"))
}
