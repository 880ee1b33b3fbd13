package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/farm-build/farm/lib/record"
)

// Process reads job records from in and runs each as it arrives, writing
// each outcome to out as soon as it is known. A bad line stops
// the run: builds under way are cancelled and nothing more is written but
// one error record that says why.
func (r *Runner) Process(parent context.Context, in io.Reader, out *record.Encoder) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failed  int
		stopped bool
	)
	write := func(r record.Record) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if _, isErr := r.(*record.Error); isErr {
			failed++
		}
		if err := out.Write(r); err != nil {
			cancel(fmt.Errorf("writing records: %w", err))
		}
	}
	dec := record.NewDecoder(r.cfg.Stage, in)
	// Read stdin on its own goroutine: a Ctrl-C must stop the run even
	// while the stage before us keeps stdin open and silent.
	type next struct {
		rec  record.Record
		err  error
		line int
	}
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
	jobs, line := 0, 0
	var inputErr error
read:
	for inputErr == nil {
		var rec record.Record
		select {
		case <-ctx.Done():
			break read
		case n := <-records:
			line = n.line
			if errors.Is(n.err, io.EOF) {
				break read
			}
			if n.err != nil {
				inputErr = n.err
				break read
			}
			rec = n.rec
		}
		switch rec := rec.(type) {
		case *record.Job:
			jobs++
			wg.Add(1)
			go func() {
				defer wg.Done()
				write(r.Run(ctx, rec))
			}()
		case *record.Error:
			write(rec)
		default:
			inputErr = fmt.Errorf("%s: stdin line %d: a %s record; %s reads job records (from farm-plan)", r.cfg.Stage, line, rec.Kind(), r.cfg.Stage)
		}
	}
	badLine := line // the line inputErr is about, if any
	if inputErr == nil && jobs == 0 && ctx.Err() == nil {
		inputErr = fmt.Errorf("%s: no job records on stdin; pipe farm-plan into farm-build", r.cfg.Stage)
		badLine = 0 // no line is wrong: the job records are missing
	}
	if inputErr != nil {
		mu.Lock()
		out.Write(&record.Error{Stage: r.cfg.Stage, Error: inputErr.Error(), Line: badLine})
		stopped = true
		mu.Unlock()
		cancel(inputErr)
	}
	wg.Wait()
	if parent.Err() != nil || inputErr != nil {
		r.Undo()
	}
	if inputErr != nil {
		return inputErr
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d platforms failed (see the error records and the log above)", failed, jobs)
	}
	return nil
}
