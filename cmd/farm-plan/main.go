// Command farm-plan reads node records and writes one job record per target
// platform. The logic lives in lib/plan; this file is flags and wiring.
package main

import (
	"io"
	"os"

	"github.com/farm-build/farm/lib/plan"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/stage"
	"github.com/urfave/cli/v2"
)

func main() {
	stage.Main(newApp(os.Stdin))
}

const description = `farm-plan reads node records (what farm-nodes writes) on stdin and writes
one job record per target platform on stdout: the node that builds it,
whether by emulation, and the other nodes farm-build may fail over to.
A node that builds a platform natively always beats one that emulates it;
no node gets a second job while a capable node has none, and beyond that
jobs go to the node with the lowest (jobs+1)/cpus. The plan is a pure
function of the input: the same nodes give the same plan whatever order
their records come in, and adding or removing a node moves only platforms
that node can build. Node records with "error" set are skipped with a
warning. Error records on stdin are passed on at once; any other record is
an error. Jobs are written only if every platform can be placed; a failure
goes to stderr and, for the end of the pipeline, into an error record.

Examples:
   # Build every platform the farm builds natively
   farm-nodes | farm-plan | farm-build -t IMG . | farm-manifest

   # Choose the targets; every spelling of a platform is accepted
   farm-nodes | farm-plan --platforms amd64,linux/arm64/v8,arm/v7

   # Save a plan, review it, build it later
   farm-nodes | farm-plan > plan.jsonl
   farm-build -t IMG . < plan.jsonl

   # Where does each platform go, and why?
   farm-nodes | farm-plan --explain | jq -r 'select(.kind == "job") | [.platform, .node.name, .emulated] | @tsv'

   # Spread different images over the farm; refuse slow emulated builds
   farm-nodes | farm-plan --affinity quay.io/me/app --emulation never | farm-build -t quay.io/me/app .

Exit status: 0 planned, 1 bad input or planning failed, 2 usage error.

Environment:
   FARM_LOG_LEVEL    --log-level
   FARM_LOG_FORMAT   --log-format
farm-plan never talks to a node, so no connection setting applies to it.

See also: docs/farm-plan.md describes the scoring; docs/custom-scheduler.md
how to write your own plan stage.`

// newApp builds farm-plan reading records from stdin. stage.Main adds the
// common flags and sets the output writers; tests set them themselves.
func newApp(stdin io.Reader) *cli.App {
	return &cli.App{
		Name:            plan.Stage,
		Usage:           "choose a node for every target platform",
		UsageText:       "farm-nodes | farm-plan [options] > plan.jsonl",
		Description:     description,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "platforms", Aliases: []string{"p"},
				Usage: "comma-separated target `PLATFORMS`, in any spelling: arm64, linux/arm64, linux/arm64/v8, arm/v7, x86_64, ... " +
					"(default: every platform a reachable node builds natively)"},
			&cli.StringFlag{Name: "emulation", Value: string(plan.EmulationAuto),
				Usage: "when no reachable node builds a platform natively, `MODE` auto builds it by emulation and never fails instead"},
			&cli.StringFlag{Name: "affinity",
				Usage: "mix `KEY` (say, the image name) into the choice, so different images spread over the farm " +
					"while each keeps its placement (default: none, every image places platforms alike)"},
			&cli.IntFlag{Name: "max-alternatives", Value: plan.DefaultMaxAlternatives,
				Usage: "give each job at most the `N` best other nodes to fail over to, so job lines stay small for any farm size"},
			&cli.BoolFlag{Name: "explain",
				Usage: "print on stderr, for each platform, the candidate nodes with class, jobs, CPUs, load and score, and why one was chosen"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return stage.UsageError{Err: err}
		},
		Action: func(c *cli.Context) error {
			opts, err := options(c)
			if err != nil {
				return err
			}
			if f, ok := stdin.(*os.File); ok && stage.IsTerminal(f) {
				return stage.Usagef("stdin is a terminal; farm-plan reads node records: farm-nodes | farm-plan")
			}
			log, err := stage.Logger(c, c.App.ErrWriter)
			if err != nil {
				return err
			}
			return plan.Run(c.Context, opts, stdin, c.App.Writer, c.App.ErrWriter, log)
		},
	}
}

// options turns the flags into plan.Options; every mistake is a usage error.
func options(c *cli.Context) (plan.Options, error) {
	if c.NArg() > 0 {
		return plan.Options{}, stage.Usagef("unexpected argument %q: farm-plan reads node records on stdin", c.Args().First())
	}
	var opts plan.Options
	if c.IsSet("platforms") {
		list, err := platform.ParseList(c.String("platforms"))
		if err != nil {
			return opts, stage.Usagef("--platforms: %w", err)
		}
		if len(list) == 0 {
			return opts, stage.Usagef("--platforms: no platform given")
		}
		opts.Platforms = list
	}
	em, err := plan.ParseEmulation(c.String("emulation"))
	if err != nil {
		return opts, stage.Usagef("--emulation %w", err)
	}
	opts.Emulation = em
	opts.Affinity = c.String("affinity")
	opts.Explain = c.Bool("explain")
	if opts.MaxAlternatives = c.Int("max-alternatives"); opts.MaxAlternatives < 1 {
		return opts, stage.Usagef("--max-alternatives %d: want 1 or more", opts.MaxAlternatives)
	}
	return opts, nil
}
