package timeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/farm-build/farm/lib/record"
)

// Stage is the command's name in error records and messages.
const Stage = "farm-timeline"

// Options are farm-timeline's settings.
type Options struct {
	// Output, when set, is the file the picture goes to; the records then
	// pass through to stdout unchanged (a stage of the pipeline). Empty:
	// the picture goes to stdout and the records stop here.
	Output string
	// Format is "svg" or "html"; "" picks by Output's extension (html
	// unless it ends in .svg).
	Format string
	// Title heads the picture.
	Title string
}

// FormatFor says which format opts ask for.
func (o Options) FormatFor() (string, error) {
	switch o.Format {
	case "svg", "html":
		return o.Format, nil
	case "", "auto":
		if strings.EqualFold(filepath.Ext(o.Output), ".svg") {
			return "svg", nil
		}
		return "html", nil
	}
	return "", fmt.Errorf("--format %q: want svg, html or auto", o.Format)
}

// Run is farm-timeline: read records from in until the end record and
// draw the image and error records' phases. With opts.Output set it is a
// stage of the pipeline: every record passes on to out, unchanged and at
// once, the end record last, and a picture it cannot draw (no phase
// times) is only a warning, so the run's records are never held back. Bad
// or cut-short input is drawn as far as it goes, then passed on as an
// error record (and the end record) like every stage does; the error is
// returned.
func Run(ctx context.Context, opts Options, in io.Reader, out io.Writer, warn func(string)) error {
	format, err := opts.FormatFor()
	if err != nil {
		return err
	}
	pass := opts.Output != ""
	enc := record.NewEncoder(out)
	dec := record.NewDecoder(Stage, in)
	var recs []record.Record
	var readErr error
	for ctx.Err() == nil {
		r, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if pass {
			if err := enc.Write(r); err != nil {
				return fmt.Errorf("writing stdout: %w", err)
			}
		}
		recs = append(recs, r)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	err = draw(recs, opts, format, pass, out)
	if err != nil && pass {
		warn("no timeline written to " + opts.Output + ": " + err.Error())
		err = nil
	}
	if readErr != nil {
		err = readErr
		if pass {
			rec := record.Error{Stage: Stage, Error: readErr.Error()}
			var de *record.DecodeError
			if errors.As(readErr, &de) {
				rec.Error, rec.Line = de.Msg, de.Line
			}
			enc.Write(&rec)
		}
	}
	if pass {
		if werr := enc.End(Stage); werr != nil && err == nil {
			err = fmt.Errorf("writing stdout: %w", werr)
		}
	}
	return err
}

// draw renders recs to opts.Output, or to out when not passing through.
func draw(recs []record.Record, opts Options, format string, pass bool, out io.Writer) error {
	t, err := New(recs)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if format == "svg" {
		err = t.SVG(&buf, opts.Title)
	} else {
		err = t.HTML(&buf, opts.Title)
	}
	if err != nil {
		return err
	}
	if !pass {
		_, err = out.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(opts.Output, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the timeline: %w", err)
	}
	return nil
}
