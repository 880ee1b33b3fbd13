// Command farm-build builds each job's platform on its node and pulls the
// images back into local podman storage.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/farm-build/farm/lib/buildctx"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/dispatch"
	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/progress"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/registry"
	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/transfer"
	"github.com/urfave/cli/v2"
)

const name = "farm-build"

const description = `farm-build reads job records (from farm-plan) on stdin and builds each job's
platform on its node, all in parallel, starting when the plan's end record
arrives: nothing is built from a plan cut short (its stage died) or one that
names a platform twice. The build context is walked once (honouring .containerignore
or .dockerignore), compressed in parallel, and the same bytes are sent to every
node. Each finished image comes back over the node's own connection into
local podman storage and tagged TAG-os-arch[-variant], so it survives
'podman image prune' until farm-manifest puts it in a list.

Build output goes to stderr, each line prefixed [platform@node]. For each
platform one record goes to stdout: an image record, or an error record when
the platform failed. When a node fails (connection lost, service gone) the job
moves to the next node in its alternatives; a build that fails by itself (a bad
Containerfile, a failing RUN step) is not retried. Ctrl-C stops every remote
build (its processes are killed on the node), removes what this run pulled
back and exits 130.

Exit status: 0 when every platform was built, 1 when any failed or the input
was bad, 2 for a usage error, 130/143 when interrupted.

Environment:
   CONTAINER_HOST      this machine's podman service, where the images come back, as podman
                       (default: podman's socket, else a private podman service for the run;
                       not used with --push)
   CONTAINER_SSHKEY    SSH private key for nodes whose record names no identity, as podman
   SSH_AUTH_SOCK       the ssh-agent to ask for keys (farm never prompts for a passphrase)
   FARM_KNOWN_HOSTS    known_hosts files, colon-separated
                       (default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)
   REGISTRY_AUTH_FILE  --authfile, as podman
   FARM_LOG_LEVEL      --log-level
   FARM_LOG_FORMAT     --log-format

Examples:
   farm-nodes --farm lab | farm-plan | farm-build -t registry.example.com/app:1.0 .
   farm-nodes | farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t localhost:5000/demo:latest -f Containerfile.prod --build-arg VERSION=1.2 ./src
   farm-nodes | farm-plan > plan.jsonl; farm-build -t IMG . < plan.jsonl      # save a plan, replay it
   farm-build -t IMG --cleanup --jobs 2 . < plan.jsonl | farm-manifest
   farm-build -t registry.example.com/app:1.0 --push . < plan.jsonl | farm-manifest   # nodes push; the list is made in the registry`

func main() {
	stage.Main(&cli.App{
		Name:        name,
		Usage:       "build each planned platform on its node and pull the images back",
		UsageText:   "farm-build -t NAME[:TAG] [flags] [CONTEXT] < jobs.jsonl",
		Description: description,
		Flags:       dispatch.Flags(),
		Action:      run,
		// Build args and labels may hold commas.
		DisableSliceFlagSeparator: true,
	})
}

func run(c *cli.Context) error {
	for f, why := range dispatch.Refused {
		if c.IsSet(f) {
			return stage.Usagef("--%s is not supported by farm-build: %s", f, why)
		}
	}
	if c.NArg() > 1 {
		return stage.Usagef("want at most one CONTEXT directory, got %d arguments", c.NArg())
	}
	if stage.IsTerminal(os.Stdin) {
		return stage.Usagef("stdin is a terminal; farm-build reads job records: farm-nodes | farm-plan | farm-build -t IMG .")
	}
	log, err := stage.Logger(c, os.Stderr)
	if err != nil {
		return err
	}
	spec, err := buildSpec(c)
	if err != nil {
		return err
	}
	if _, err := dispatch.ParseTag(c.String("tag")); err != nil {
		return stage.UsageError{Err: err}
	}
	if err := transfer.CheckMode(c.String("transfer")); err != nil {
		return stage.Usagef("--transfer: %v", err)
	}
	if f := c.String("archive-format"); f != transfer.DockerArchive && f != transfer.OCIArchive {
		return stage.Usagef("--archive-format %q: want docker-archive or oci-archive", f)
	}
	view, err := progress.New(c.String("progress"), os.Stderr, stage.IsTerminal(os.Stderr))
	if err != nil {
		return stage.UsageError{Err: err}
	}
	dir := c.Args().First()
	if dir == "" {
		dir = "."
	}

	bc, err := buildctx.Build(c.Context, buildctx.Options{
		Dir: dir, Containerfile: c.String("file"),
		Warn: func(msg string) { log.Warn(msg) },
	})
	out := record.NewEncoder(os.Stdout)
	if err != nil {
		return failRun(out, fmt.Errorf("preparing the build context %s: %w", dir, err))
	}
	defer bc.Close()
	if bc.ContainerfileInTar != "" {
		spec.Containerfiles = []string{bc.ContainerfileInTar}
	}
	log.Info("build context ready", "dir", dir, "files", bc.Files, "bytes", bc.Size())

	var pullBack *transfer.Puller
	var push *registry.Options
	if c.Bool("push") {
		push = &registry.Options{TLSVerify: c.Bool("tls-verify"), Authfile: c.String("authfile")}
	} else {
		localSvc, err := local.Open(c.Context, log)
		if err != nil {
			return failRun(out, err)
		}
		defer localSvc.Close()
		localClient, err := localSvc.Connect(c.Context)
		if err != nil {
			return failRun(out, err)
		}
		pullBack = transfer.NewPuller(localClient, transfer.Options{
			Mode: c.String("transfer"), ArchiveFormat: c.String("archive-format"),
			CacheMaxAge: c.Duration("transfer-cache-max-age"), Log: log,
		})
		defer pullBack.Close()
	}

	runner := dispatch.NewRunner(dispatch.Config{
		Push: push, PullBack: pullBack,
		Spec: spec, Tag: c.String("tag"),
		Context: func() io.Reader { return bc.NewReader() }, ContextSize: bc.Size(),
		Jobs: c.Int("jobs"), Timeout: c.Duration("timeout"), Cleanup: c.Bool("cleanup"),
		SSH: conn.DefaultSSHOptions(), Log: log, Progress: view, Stage: name,
	})
	defer runner.Close()
	defer view.Close()
	return runner.Process(c.Context, os.Stdin, out)
}

// failRun reports a failure that stops the whole run before any job starts
// also as an error record (then ends the stream: it is complete): `farm-build | farm-manifest` hides our exit code,
// and farm-manifest should say why there are no images.
func failRun(out *record.Encoder, err error) error {
	out.Write(&record.Error{Stage: name, Error: err.Error()})
	out.End(name)
	return err
}

func buildSpec(c *cli.Context) (dispatch.Spec, error) {
	spec := dispatch.Spec{
		Labels: c.StringSlice("label"), Target: c.String("target"), NoCache: c.Bool("no-cache"),
		PullPolicy: c.String("pull"), Layers: c.Bool("layers"), Format: c.String("format"),
		BuildArgs: map[string]string{},
	}
	switch spec.PullPolicy {
	case "missing", "always", "never", "newer":
	case "true":
		spec.PullPolicy = "always"
	case "false":
		spec.PullPolicy = "missing"
	default:
		return spec, stage.Usagef("--pull %q: want missing, always, never or newer", spec.PullPolicy)
	}
	if spec.Format != "oci" && spec.Format != "docker" {
		return spec, stage.Usagef("--format %q: want oci or docker", spec.Format)
	}
	for _, a := range c.StringSlice("build-arg") {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			// As podman does: ARG without a value takes it from the environment.
			v, ok = os.LookupEnv(k)
			if !ok {
				continue
			}
		}
		spec.BuildArgs[k] = v
	}
	for _, l := range spec.Labels {
		if !strings.Contains(l, "=") {
			return spec, stage.Usagef("--label %q: want KEY=VALUE", l)
		}
	}
	return spec, nil
}
