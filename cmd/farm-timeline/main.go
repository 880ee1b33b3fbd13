// Command farm-timeline draws where a farm-build run's time went, from the
// phase times in its records. The logic lives in lib/timeline; this file is
// flags and wiring.
package main

import (
	"io"
	"os"

	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/timeline"
	"github.com/urfave/cli/v2"
)

func main() {
	stage.Main(newApp(os.Stdin))
}

const description = `farm-timeline reads the records farm-build writes (image and error records,
which carry when each phase of each job began and ended) and draws the run
as a self-contained SVG or HTML page: one row per platform@node, its phases
(context, connect, upload, build, push, pull) in colours, a failed attempt
dashed, the critical path outlined, the run's wall time and its bound (the
context, then the slowest job's phases back to back: what the run would
take if nothing waited).

With -o FILE it is a stage of the pipeline: every record passes through to
stdout unchanged, and the picture is written to FILE when the input ends
(a picture it cannot draw is a warning, never a failed pipeline). Without
-o it reads saved records and writes the picture to stdout.

Examples:
   # Draw the run as it goes by
   farm-nodes | farm-plan | farm-build -t IMG . | farm-timeline -o run.html | farm-manifest

   # Keep the records, draw them later
   farm-nodes | farm-plan | farm-build -t IMG . | tee run.jsonl | farm-manifest
   farm-timeline --format svg < run.jsonl > run.svg

   # A saved plan replayed, drawn
   farm-build -t IMG . < plan.jsonl | farm-timeline -o run.html | farm-manifest

Exit status: 0 drawn, 1 bad input or nothing to draw, 2 usage error.

Environment:
   FARM_LOG_LEVEL    --log-level
   FARM_LOG_FORMAT   --log-format

See also: docs/records.md#phases says what each phase spans.`

// newApp builds farm-timeline reading records from stdin. stage.Main adds
// the common flags and sets the output writers; tests set them themselves.
func newApp(stdin io.Reader) *cli.App {
	return &cli.App{
		Name:            timeline.Stage,
		Usage:           "draw a farm-build run's timeline as SVG or HTML",
		UsageText:       "... | farm-build -t IMG . | farm-timeline -o run.html | farm-manifest\n   farm-timeline [--format svg|html] < records.jsonl > run.html",
		Description:     description,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, TakesFile: true,
				Usage: "write the picture to `FILE` and pass the records through to stdout (default: the picture to stdout)"},
			&cli.StringFlag{Name: "format", Value: "auto",
				Usage: "`FORMAT` of the picture: svg, html, or auto (svg for a FILE ending in .svg, else html)"},
			&cli.StringFlag{Name: "title", Value: "farm build timeline", Usage: "the picture's `TITLE`"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return stage.UsageError{Err: err}
		},
		Action: func(c *cli.Context) error {
			opts := timeline.Options{Output: c.String("output"), Format: c.String("format"), Title: c.String("title")}
			if _, err := opts.FormatFor(); err != nil {
				return stage.UsageError{Err: err}
			}
			if c.NArg() > 0 {
				return stage.Usagef("unexpected argument %q: farm-timeline reads records on stdin", c.Args().First())
			}
			if f, ok := stdin.(*os.File); ok && stage.IsTerminal(f) {
				return stage.Usagef("stdin is a terminal; farm-timeline reads farm-build's records: farm-timeline < run.jsonl > run.html")
			}
			if f, ok := c.App.Writer.(*os.File); ok && opts.Output == "" && stage.IsTerminal(f) {
				return stage.Usagef("stdout is a terminal; give -o FILE, or redirect: farm-timeline < run.jsonl > run.html")
			}
			log, err := stage.Logger(c, c.App.ErrWriter)
			if err != nil {
				return err
			}
			return timeline.Run(c.Context, opts, stdin, c.App.Writer, func(msg string) { log.Warn(msg) })
		},
	}
}
