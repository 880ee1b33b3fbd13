package plan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/farm-build/farm/lib/record"
)

// Run is farm-plan: it reads node records from in, passes error records on
// to out at once, plans, and writes the job records to out. All input is
// read before any job is written, so bad input or a platform that cannot be
// placed leaves no half plan for farm-build to start on. Failures are
// returned, and also written to out as an error record, because in
// `farm-plan | farm-build` only the last stage's exit code counts.
// Warnings go to log; --explain output to stderr. The end record comes
// last, unless ctx was cancelled: a plan read from a truncated stream (no
// end record: farm-nodes died) is an error, not a smaller plan.
func Run(ctx context.Context, opts Options, in io.Reader, out, stderr io.Writer, log *slog.Logger) (err error) {
	enc := record.NewEncoder(out)
	defer func() {
		if ctx.Err() == nil {
			if werr := enc.End(Stage); werr != nil && err == nil {
				err = fmt.Errorf("writing stdout: %w", werr)
			}
		}
	}()
	fail := func(err error) error {
		rec := record.Error{Stage: Stage, Error: strings.TrimPrefix(err.Error(), Stage+": ")}
		var de *record.DecodeError
		if errors.As(err, &de) {
			// The line has a field of its own.
			rec.Error, rec.Line = de.Msg, de.Line
		}
		if werr := enc.Write(&rec); werr != nil {
			return errors.Join(err, fmt.Errorf("writing stdout: %w", werr))
		}
		return err
	}

	nodes, lines, err := readNodes(ctx, record.NewDecoder(Stage, in), enc, fail)
	if err != nil {
		return err
	}

	res, err := Plan(nodes, opts)
	if err != nil {
		var ne *NodeError
		var un Unplaceable
		switch {
		case errors.As(err, &ne):
			return fail(&record.DecodeError{Stage: Stage, Line: lines[ne.Index], Msg: ne.Error()})
		case errors.As(err, &un):
			// One error record per platform, each complete on its own, so
			// a consumer can tell exactly which platforms are missing.
			var werr error
			for _, pe := range un {
				werr = errors.Join(werr, enc.Write(&record.Error{Stage: Stage, Error: pe.Error(), Platform: pe.Platform}))
			}
			if werr != nil {
				return errors.Join(err, fmt.Errorf("writing stdout: %w", werr))
			}
			return err
		}
		return fail(err)
	}

	for _, n := range res.Skipped {
		log.Warn("skipping unreachable node", "node", n.Name, "uri", record.RedactURI(n.URI), "error", n.Error)
	}
	if opts.Explain {
		if err := WriteExplain(stderr, res.Decisions, opts); err != nil {
			return err
		}
	}
	for i := range res.Jobs {
		job := &res.Jobs[i]
		if job.Emulated {
			// Emulated builds are many times slower; say why it happens.
			log.Info("building by emulation: no reachable node builds this platform natively",
				"platform", job.Platform, "node", job.Node.Name)
		}
		if err := enc.Write(job); err != nil {
			return fmt.Errorf("writing stdout: %w", err)
		}
	}
	return nil
}

// wrongKind explains a record farm-plan does not read, guessing at the
// pipeline mistake behind it.
func wrongKind(kind string) string {
	hint := "farm-plan goes right after farm-nodes: farm-nodes | farm-plan | farm-build"
	if kind == record.KindJob {
		hint = "did you pipe farm-plan into itself?"
	}
	article := "a"
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		article = "an"
	}
	return fmt.Sprintf("%s %s record; farm-plan reads node records (%s)", article, kind, hint)
}

// readNodes reads the node records and the input line of each (for error
// messages); error records are passed on to enc at once: whoever is at the
// end of the pipeline must hear about them, and now rather than later.
// A bad input goes through fail.
func readNodes(ctx context.Context, dec *record.Decoder, enc *record.Encoder, fail func(error) error) ([]record.Node, []int, error) {
	var nodes []record.Node
	var lines []int
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		rec, err := dec.Next()
		if err == io.EOF {
			return nodes, lines, nil
		}
		if err != nil {
			return nil, nil, fail(err)
		}
		switch r := rec.(type) {
		case *record.Node:
			nodes = append(nodes, *r)
			lines = append(lines, dec.Line())
		case *record.Error:
			if err := enc.Write(r); err != nil {
				return nil, nil, fmt.Errorf("writing stdout: %w", err)
			}
		default:
			return nil, nil, fail(&record.DecodeError{Stage: Stage, Line: dec.Line(), Msg: wrongKind(rec.Kind())})
		}
	}
}
