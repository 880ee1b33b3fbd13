package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// tailLines is how much of a failed build's output the tty view prints:
// enough to see the failing step, not the whole log.
const tailLines = 15

// TTY draws one line per job and keeps build output off the screen, except
// the tail of a failed build, printed above the lines.
type TTY struct {
	p *mpb.Progress
}

// NewTTY draws on w, which should be a terminal.
func NewTTY(w io.Writer) *TTY {
	return &TTY{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(30), mpb.WithRefreshRate(150*time.Millisecond),
		// Draw even when w is not a terminal (--progress=tty into a file or a
		// test): the user asked for this view.
		mpb.WithAutoRefresh())}
}

// Job implements View.
func (t *TTY) Job(platform, node string) Job {
	j := &ttyJob{t: t, name: "[" + platform + "@" + node + "]", phase: "connecting", start: time.Now()}
	status := decor.Any(func(decor.Statistics) string { return j.status() }, decor.WCSyncSpaceR)
	j.bar = t.p.AddBar(0,
		mpb.PrependDecorators(decor.Name(j.name, decor.WCSyncSpaceR), status),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return j.elapsed() })),
		mpb.BarFillerOnComplete(""),
	)
	return j
}

// Close implements View.
func (t *TTY) Close() { t.p.Wait() }

type ttyJob struct {
	t   *TTY
	bar *mpb.Bar
	// barMu orders the calls on bar, so the bar ends in the latest state.
	// Never taken by a decorator; taken before mu, never after it.
	barMu sync.Mutex
	name  string
	start time.Time

	// mu guards the fields below; mpb's render goroutine takes it in the
	// decorators, so it is never held while calling a bar method (those
	// wait for that goroutine).
	mu        sync.Mutex
	phase     string
	step, of  int
	tail      []string
	final     string
	doneAfter time.Duration
}

func (j *ttyJob) status() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.final != "" {
		return j.final
	}
	if j.of > 0 && j.phase == "building" {
		return fmt.Sprintf("building: step %d/%d", j.step, j.of)
	}
	return j.phase
}

func (j *ttyJob) elapsed() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	d := time.Since(j.start)
	if j.doneAfter > 0 {
		d = j.doneAfter
	}
	return d.Round(100 * time.Millisecond).String()
}

func (j *ttyJob) Phase(phase string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.phase = phase
}

func (j *ttyJob) Log(line string) {
	n, m, isStep := ParseStep(line)
	j.mu.Lock()
	if isStep {
		j.step, j.of = n, m
	}
	j.tail = append(j.tail, line)
	if len(j.tail) > tailLines {
		j.tail = j.tail[1:]
	}
	j.mu.Unlock()
	if isStep {
		j.showStep()
	}
}

// showStep moves the bar to the latest step, outside mu.
func (j *ttyJob) showStep() {
	j.barMu.Lock()
	defer j.barMu.Unlock()
	j.mu.Lock()
	n, m, ended := j.step, j.of, j.final != ""
	j.mu.Unlock()
	if ended {
		return
	}
	j.bar.SetTotal(int64(m), false)
	j.bar.SetCurrent(int64(n - 1))
}

func (j *ttyJob) Done(summary string, err error) {
	j.barMu.Lock()
	defer j.barMu.Unlock()
	j.mu.Lock()
	j.doneAfter = time.Since(j.start)
	if err != nil {
		j.final = "FAILED"
		tail := append([]string(nil), j.tail...)
		j.mu.Unlock()
		for _, l := range tail {
			fmt.Fprintf(j.t.p, "%s %s\n", j.name, l)
		}
		fmt.Fprintf(j.t.p, "%s failed: %v\n", j.name, err)
		j.bar.Abort(false)
		return
	}
	j.final = "done: " + summary
	j.mu.Unlock()
	j.bar.SetTotal(-1, true)
}
