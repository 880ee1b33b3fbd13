// Command farm-build builds each job's platform on its node and pulls the
// images back into local podman storage.
package main

import (
	"io"
	"os"

	"github.com/farm-build/farm/lib/buildflags"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/dispatch"
	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/progress"
	"github.com/farm-build/farm/lib/registry"
	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/transfer"
	"github.com/urfave/cli/v2"
)

const name = "farm-build"

func main() {
	// podman's build flags read containers.conf: a broken one stops here.
	if _, err := buildflags.New(); err != nil {
		os.Exit(stage.Report(name, err, os.Stderr))
	}
	stage.Main(newApp(os.Stdin))
}

// newApp builds farm-build reading job records from stdin. stage.Main adds
// the common flags and sets the output writers; tests set them themselves.
func newApp(stdin io.Reader) *cli.App {
	set, _ := buildflags.New() // checked in main
	return &cli.App{
		Name:        name,
		Usage:       "build each planned platform on its node and pull the images back",
		UsageText:   "farm-build -t NAME[:TAG] [flags] [CONTEXT] < jobs.jsonl",
		Description: description,
		Flags:       buildflags.Flags(set),
		// Build args and labels may hold commas.
		DisableSliceFlagSeparator: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return stage.UsageError{Err: err}
		},
		Action: func(c *cli.Context) error {
			opts, err := options(c, stdin, set)
			if err != nil {
				return err
			}
			width, term := stage.TerminalWidth(c.App.ErrWriter)
			view, err := progress.New(c.String("progress"), c.App.ErrWriter, term, width)
			if err != nil {
				return stage.UsageError{Err: err}
			}
			// Log lines go through the view: on a terminal above the live
			// lines, never into them.
			log, err := stage.Logger(c, view.Writer())
			if err != nil {
				view.Close()
				return err
			}
			opts.Config.Progress = view
			return dispatch.Build(c.Context, opts, stdin, c.App.Writer, log)
		},
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && stage.IsTerminal(f)
}

// options turns the flags into dispatch.BuildOptions; every mistake is a
// usage error.
func options(c *cli.Context, stdin io.Reader, set *buildflags.Set) (dispatch.BuildOptions, error) {
	var opts dispatch.BuildOptions
	spec, secrets, err := buildflags.Spec(c, set)
	if err != nil {
		return opts, stage.UsageError{Err: err}
	}
	if isTerminal(stdin) {
		return opts, stage.Usagef("stdin is a terminal; farm-build reads job records: farm-nodes | farm-plan | farm-build -t IMG .")
	}
	opts.Dir, opts.Containerfile = buildflags.ContextDir(c), c.String("file")
	opts.IgnoreFile, opts.Extra = set.IgnoreFile(), secrets
	opts.Config = dispatch.Config{
		Spec: spec, Tag: c.String("tag"), Jobs: c.Int("jobs"), Timeout: c.Duration("timeout"), Cleanup: c.Bool("cleanup"),
		SSH: conn.DefaultSSHOptions(), Stage: name, IIDFile: c.String("iidfile"),
	}
	if c.Bool("push") {
		opts.Config.Push = &registry.Options{TLSVerify: c.Bool("tls-verify"), Authfile: c.String("authfile")}
	}
	opts.Local = local.RequestFrom(c)
	if opts.Preconnect, err = buildflags.Preconnect(c); err != nil {
		return opts, stage.UsageError{Err: err}
	}
	opts.Transfer = transfer.Options{
		Mode: c.String("transfer"), ArchiveFormat: c.String("archive-format"), Compression: c.String("transfer-compression"), CacheMaxAge: c.Duration("transfer-cache-max-age"),
	}
	return opts, nil
}
