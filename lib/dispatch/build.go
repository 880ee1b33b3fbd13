package dispatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/farm-build/farm/lib/buildctx"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/transfer"
)

// BuildOptions are farm-build's settings.
type BuildOptions struct {
	// Dir is the context directory; Containerfile, when set, the file to
	// build (inside Dir or not).
	Dir, Containerfile string
	// IgnoreFile replaces .containerignore (--ignorefile); Extra are files
	// sent at the context's root (--secret files, as podman-remote sends them).
	IgnoreFile string
	Extra      []buildctx.Extra
	// Config is what every job shares; Build fills in the context, the
	// pull-back and the log. Build closes Config.Progress when it ends.
	Config Config
	// Transfer says how images come back (unused with Config.Push).
	Transfer transfer.Options
	// Local names the local store (--url, --connection).
	Local local.Request
	// Preconnect are the nodes to connect to before the plan arrives
	// (--preconnect): those the plan is expected to name.
	Preconnect []conn.Target
}

// Build is farm-build: make the context once, then run the plan read from
// in (see Runner.Process), writing one image or error record per job to
// out. A failure before any job starts is also written as an error record:
// `farm-build | farm-manifest` hides farm-build's exit code.
func Build(ctx context.Context, opts BuildOptions, in io.Reader, out io.Writer, log *slog.Logger) error {
	opts.Config.Log = log
	defer opts.Config.Progress.Close()
	// The nodes' connections open while the context is made and the plan
	// arrives; the runner needs only the log for that.
	runner := NewRunner(opts.Config)
	runner.Preconnect(ctx, opts.Preconnect)
	err := build(ctx, opts, runner, in, record.NewEncoder(out), log)
	runner.Close()
	return err
}

func build(ctx context.Context, opts BuildOptions, runner *Runner, in io.Reader, enc *record.Encoder, log *slog.Logger) error {
	cfg := &runner.cfg
	fail := func(err error) error {
		enc.Write(&record.Error{Stage: cfg.Stage, Error: err.Error()})
		enc.End(cfg.Stage) // nothing more to say: the stream is complete
		return err
	}
	began := time.Now()
	bc, err := buildctx.Build(ctx, buildctx.Options{
		Dir: opts.Dir, Containerfile: opts.Containerfile, IgnoreFile: opts.IgnoreFile, Extra: opts.Extra,
		Warn: func(msg string) { log.Warn(msg) },
	})
	if err != nil {
		return fail(fmt.Errorf("preparing the build context %s: %w", opts.Dir, err))
	}
	defer bc.Close()
	// Preconnect's goroutines read only cfg.Log: the fields set here are
	// the jobs', and no job starts before Process.
	if bc.ContainerfileInTar != "" {
		cfg.Spec.Containerfiles = []string{bc.ContainerfileInTar}
	}
	log.Info("build context ready", "dir", opts.Dir, "files", bc.Files, "bytes", bc.Size())
	cfg.Prepared = record.Phase{Name: record.PhaseContext, Start: record.Stamp(began), End: record.Stamp(time.Now())}
	cfg.Context, cfg.ContextSize = func() io.Reader { return bc.NewReader() }, bc.Size()

	if cfg.Push == nil {
		svc, err := local.OpenRequest(ctx, log, opts.Local)
		if err != nil {
			return fail(err)
		}
		defer svc.Close()
		client, err := svc.Connect(ctx)
		if err != nil {
			return fail(err)
		}
		topts := opts.Transfer
		topts.Log, topts.LocalName = log, record.RedactURI(svc.URI)
		if c := svc.Session().SSH(); c != nil {
			topts.LocalListen = c.Listen
		}
		cfg.PullBack = transfer.NewPuller(client, topts)
		defer cfg.PullBack.Close()
	}
	return runner.Process(ctx, in, enc)
}
