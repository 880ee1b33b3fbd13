// Command farm-build builds each job's platform on its node and pulls the
// images back into local podman storage.
package main

import (
	"io"
	"os"

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
	stage.Main(newApp(os.Stdin))
}

// newApp builds farm-build reading job records from stdin. stage.Main adds
// the common flags and sets the output writers; tests set them themselves.
func newApp(stdin io.Reader) *cli.App {
	return &cli.App{
		Name:        name,
		Usage:       "build each planned platform on its node and pull the images back",
		UsageText:   "farm-build -t NAME[:TAG] [flags] [CONTEXT] < jobs.jsonl",
		Description: description,
		Flags:       dispatch.Flags(),
		// Build args and labels may hold commas.
		DisableSliceFlagSeparator: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return stage.UsageError{Err: err}
		},
		Action: func(c *cli.Context) error {
			opts, err := options(c, stdin)
			if err != nil {
				return err
			}
			log, err := stage.Logger(c, c.App.ErrWriter)
			if err != nil {
				return err
			}
			if opts.Config.Progress, err = progress.New(c.String("progress"), c.App.ErrWriter, isTerminal(c.App.ErrWriter)); err != nil {
				return stage.UsageError{Err: err}
			}
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
func options(c *cli.Context, stdin io.Reader) (dispatch.BuildOptions, error) {
	var opts dispatch.BuildOptions
	for f, why := range dispatch.Refused {
		if c.IsSet(f) {
			return opts, stage.Usagef("--%s is not supported by farm-build: %s", f, why)
		}
	}
	if c.NArg() > 1 {
		return opts, stage.Usagef("want at most one CONTEXT directory, got %d arguments", c.NArg())
	}
	if isTerminal(stdin) {
		return opts, stage.Usagef("stdin is a terminal; farm-build reads job records: farm-nodes | farm-plan | farm-build -t IMG .")
	}
	spec, err := buildSpec(c)
	if err != nil {
		return opts, err
	}
	if _, err := dispatch.ParseTag(c.String("tag")); err != nil {
		return opts, stage.UsageError{Err: err}
	}
	if err := transfer.CheckMode(c.String("transfer")); err != nil {
		return opts, stage.Usagef("--transfer: %v", err)
	}
	if f := c.String("archive-format"); f != transfer.DockerArchive && f != transfer.OCIArchive {
		return opts, stage.Usagef("--archive-format %q: want docker-archive or oci-archive", f)
	}
	opts.Dir, opts.Containerfile = c.Args().First(), c.String("file")
	if opts.Dir == "" {
		opts.Dir = "."
	}
	opts.Config = dispatch.Config{
		Spec: spec, Tag: c.String("tag"), Jobs: c.Int("jobs"), Timeout: c.Duration("timeout"), Cleanup: c.Bool("cleanup"),
		SSH: conn.DefaultSSHOptions(), Stage: name,
	}
	if c.Bool("push") {
		opts.Config.Push = &registry.Options{TLSVerify: c.Bool("tls-verify"), Authfile: c.String("authfile")}
	}
	opts.Local = local.RequestFrom(c)
	opts.Transfer = transfer.Options{
		Mode: c.String("transfer"), ArchiveFormat: c.String("archive-format"), CacheMaxAge: c.Duration("transfer-cache-max-age"),
	}
	return opts, nil
}

func buildSpec(c *cli.Context) (dispatch.Spec, error) {
	spec := dispatch.Spec{
		Labels: c.StringSlice("label"), Target: c.String("target"), NoCache: c.Bool("no-cache"),
		PullPolicy: c.String("pull"), Layers: c.Bool("layers"), Format: c.String("format"),
	}
	if err := spec.Check(c.StringSlice("build-arg"), os.LookupEnv); err != nil {
		return spec, stage.UsageError{Err: err}
	}
	return spec, nil
}
