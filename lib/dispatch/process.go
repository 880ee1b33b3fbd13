package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/record"
)

// Process reads the whole plan from in, up to its end record, then runs
// every job at once, writing each outcome to out as soon as it is known,
// and the end record last (unless parent was cancelled). Error records from
// upstream are passed on as they arrive. Nothing is built from a plan that
// is bad, truncated (no end record: the stage before died) or names a
// platform twice: one error record says why, and that is all.
//
// Waiting for the end record costs nothing after farm-plan, which writes
// its whole plan at once once every node has answered; a custom scheduler
// that writes jobs slowly has them start only when it ends. The other way,
// starting each job as it arrives, would build from a plan that may turn
// out to be truncated.
func (r *Runner) Process(parent context.Context, in io.Reader, out *record.Encoder) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var wg sync.WaitGroup
	res := &results{out: out, cancel: cancel}
	records := readRecords(ctx, record.NewDecoder(r.cfg.Stage, in))
	plan, line, inputErr := readPlan(ctx, r.cfg.Stage, records, res.write)
	jobs := len(plan)
	if inputErr == nil && ctx.Err() == nil {
		for _, rec := range plan {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res.write(r.Run(ctx, rec))
			}()
		}
	}
	badLine := line // the line inputErr is about, if any
	if errors.Is(inputErr, record.ErrTruncated) {
		badLine = 0 // no line is wrong: the lines after it are missing
	}
	if inputErr == nil && jobs == 0 && ctx.Err() == nil {
		inputErr = fmt.Errorf("%s: no job records on stdin; pipe farm-plan into farm-build", r.cfg.Stage)
		badLine = 0 // no line is wrong: the job records are missing
	}
	if inputErr != nil {
		res.stop(&record.Error{Stage: r.cfg.Stage, Error: inputErr.Error(), Line: badLine})
		cancel(inputErr)
	}
	wg.Wait()
	if parent.Err() != nil || inputErr != nil {
		r.Undo()
	}
	if parent.Err() == nil {
		// Everything this run had to say is out: the stream is complete.
		out.End(r.cfg.Stage)
	}
	if inputErr != nil {
		return inputErr
	}
	if res.failed > 0 {
		return fmt.Errorf("%d of %d platforms failed (see the error records and the log above)", res.failed, jobs)
	}
	return nil
}

// next is one record read, or the error that ended the input.
type next struct {
	rec  record.Record
	err  error
	line int
}

// readRecords reads records on a goroutine of its own until an error (EOF
// included) or ctx ends: a Ctrl-C must stop the run even while the stage
// before us keeps stdin open and silent.
func readRecords(ctx context.Context, dec *record.Decoder) <-chan next {
	records := make(chan next)
	go func() {
		for {
			rec, err := dec.Next()
			select {
			case records <- next{rec, err, dec.Line()}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return records
}

// results writes outcomes as they come and counts the failures; after stop
// it writes nothing more.
type results struct {
	mu      sync.Mutex
	out     *record.Encoder
	cancel  context.CancelCauseFunc
	failed  int
	stopped bool
}

func (w *results) write(r record.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if _, isErr := r.(*record.Error); isErr {
		w.failed++
	}
	if err := w.out.Write(r); err != nil {
		w.cancel(fmt.Errorf("writing records: %w", err))
	}
}

// stop writes last, the record that says why the run stops, and nothing
// after it.
func (w *results) stop(last *record.Error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(last)
	w.stopped = true
}

// readPlan collects the job records from records up to the end of the
// stream, passing error records to write at once. It returns the jobs, the
// last line read and what was wrong with the input, if anything.
func readPlan(ctx context.Context, stage string, records <-chan next, write func(record.Record)) ([]*record.Job, int, error) {
	var plan []*record.Job
	first := map[string]int{} // platform -> line of its job
	line := 0
	for {
		var n next
		select {
		case <-ctx.Done():
			return plan, line, nil
		case n = <-records:
		}
		line = n.line
		if errors.Is(n.err, io.EOF) {
			return plan, line, nil
		}
		if n.err != nil {
			return nil, line, n.err
		}
		switch rec := n.rec.(type) {
		case *record.Job:
			key := rec.Platform
			if p, err := platform.Canonical(rec.Platform); err == nil {
				key = p
			}
			if at, dup := first[key]; dup {
				return nil, line, fmt.Errorf("%s: stdin line %d: a second job for %s (the first is on line %d); a manifest list holds one image per platform: fix the plan", stage, line, key, at)
			}
			first[key] = line
			plan = append(plan, rec)
		case *record.Error:
			write(rec)
		default:
			return nil, line, fmt.Errorf("%s: stdin line %d: a %s record; %s reads job records (from farm-plan)", stage, line, rec.Kind(), stage)
		}
	}
}
