// Command farm is the one command for people: farm build runs the pipeline
// farm-nodes | farm-plan | farm-build | farm-manifest with each flag handed
// to its stage. The logic lives in lib/pipeline; this file is flags and
// wiring.
package main

import (
	"os"

	"github.com/farm-build/farm/lib/pipeline"
	"github.com/farm-build/farm/lib/stage"
	"github.com/urfave/cli/v2"
)

const description = `farm build is one command for what the pipeline
farm-nodes | farm-plan | farm-build -t IMG . | farm-manifest does: it finds
the farm's nodes, plans a node per platform, builds every platform on its
node in parallel, brings the images back and makes one manifest list named
IMG in local podman storage (or, with --push, in the registry). It takes
podman farm build's options (--farm, --platforms, --cleanup, --local and
podman build's) and hands each to the stage that owns it; --print shows the
pipeline it runs, to copy into scripts. --plan-with (and --nodes-with,
--build-with, --manifest-with) replaces a stage by any shell command that
reads and writes the same records.

Build output, progress and each stage's messages go to stderr; the last
stage's records go to stdout: the manifest list, or a summary of it on a
terminal. Ctrl-C interrupts every stage; each cleans up as it does alone.

Exit status: the pipeline's, as with 'set -o pipefail': 0 when the list
was made, 1 when a stage failed, 2 for a usage error, 130/143 when
interrupted.

Environment:
   CONTAINERS_CONF     the containers.conf with system connections and [farms], as podman
   CONTAINER_HOST      this machine's podman service, where the images come back, as podman
   CONTAINER_SSHKEY    SSH private key for connections that name no identity, as podman
   SSH_AUTH_SOCK       the ssh-agent to ask for keys (farm never prompts)
   REGISTRY_AUTH_FILE  --authfile, as podman
   FARM_LOG_LEVEL      --log-level
   FARM_LOG_FORMAT     --log-format
Every stage reads these as it does alone.

Examples:
   farm build --farm lab --platforms linux/amd64,linux/arm64 -t localhost:5000/demo:latest .
   farm build --farm lab -t IMG --print .          # the pipeline it runs, for scripts
   farm build --farm lab -t IMG --plan-with 'scripts/examples/pin-platform.sh linux/arm64=lab-3' .
   farm build -t IMG --plan-with 'cat plan.jsonl' .   # replay a saved plan
   farm build --farm lab -t registry.example.com/app:1.0 --push .   # nodes push, the list is made in the registry

See also: docs/farm.md, and a page per stage.`

func main() {
	args, word := pipeline.Subcommand(os.Args)
	os.Args = args
	stage.Main(newApp(word))
}

// newApp is farm with the command word (build) Subcommand took off the
// arguments: flags, then one library call.
func newApp(word string) *cli.App {
	return &cli.App{
		Name:        "farm",
		Usage:       "build one multi-arch image on a farm of podman nodes, in one command",
		UsageText:   "farm build [--farm NAME] [--platforms PLATFORMS] -t NAME[:TAG] [options] [CONTEXT]",
		Description: description,
		Flags:       pipeline.Flags(),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return stage.UsageError{Err: err}
		},
		Action: func(c *cli.Context) error { return pipeline.Command(c, word) },
		// Build args and labels may hold commas.
		DisableSliceFlagSeparator: true,
	}
}
