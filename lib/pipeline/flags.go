package pipeline

import (
	"fmt"
	"strconv"
	"time"

	"github.com/farm-build/farm/lib/buildflags"
	"github.com/farm-build/farm/lib/node"
	"github.com/urfave/cli/v2"
)

// route says where a flag of farm build goes: to which stages, under which
// flag name there ("" for the same name; "ARG" for the stage's argument).
type route struct {
	stages []string
	as     string
}

// Flags of farm build: podman farm build's names where it has them
// (--farm, --platforms, --cleanup, --local and podman build's), every
// flag of farm-build, and the few of the other stages a person needs.
func Flags() []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "farm", Usage: "build on the farm `NAME` from containers.conf [farms], as podman farm build (default: every system connection, unless --node)"},
		&cli.StringSliceFlag{Name: "node", Usage: "build on the system connections `NAME`[,NAME...] as an ad-hoc farm; repeatable (default: every system connection, unless --farm)"},
		&cli.BoolFlag{Name: "local", Usage: `also build on this machine's podman service, as node "local" (podman farm build's --local; default: false)`},
		&cli.DurationFlag{Name: "node-timeout", Value: 10 * time.Second, Usage: "give up on a node that has not answered within this `DURATION` (farm-nodes --timeout)"},
		&cli.DurationFlag{Name: "node-cache-ttl", Value: node.DefaultInfoCacheTTL, Usage: "reuse what a node's podman info said for this `DURATION`; 0 asks every time (farm-nodes --cache-ttl)"},
		&cli.StringSliceFlag{Name: "emulate", Usage: "declare that NODE can build PLATFORMS by emulation: `NODE=PLATFORMS`; repeatable, as farm-nodes --emulate (default: what each node reports)"},
		&cli.StringFlag{Name: "platforms", Usage: "comma-separated target `PLATFORMS`, as podman farm build (default: every platform a reachable node builds natively)"},
		&cli.StringFlag{Name: "emulation", Value: "auto", Usage: "`MODE` auto builds a platform no node runs natively by emulation, never fails instead (farm-plan --emulation)"},
		&cli.StringFlag{Name: "affinity", Usage: "mix `KEY` into the placement so different images spread over the farm, as farm-plan --affinity (default: none)"},
		&cli.StringFlag{Name: "manifest", Usage: "`NAME` of the manifest list to make (default: the -t reference)"},
		&cli.StringFlag{Name: "digestfile", Usage: "with --push, write the list's digest to the file `PATH`, as podman --digestfile, as farm-manifest --digestfile (default: none)"},
		&cli.BoolFlag{Name: "allow-partial", Usage: "make a list of the platforms that succeeded even when others failed (farm-manifest --allow-partial; default: false)"},
		&cli.StringFlag{Name: "timeline", TakesFile: true, Usage: "draw the run's phases into `FILE` (SVG when it ends in .svg, else HTML): farm-timeline -o FILE between farm-build and farm-manifest (default: none)"},
	}
	for _, s := range Order {
		fs = append(fs, &cli.StringFlag{Name: withFlag(s), Usage: fmt.Sprintf("run the shell `COMMAND` instead of %s; it reads and writes the same records (default: %s)", s, s)})
	}
	fs = append(fs, &cli.BoolFlag{Name: "print", Usage: "print the pipeline these options make, as a shell command line, and run nothing (default: false)"})
	// farm-build's flags, podman build's among them; a containers.conf
	// podman cannot read leaves them out here, and farm-build says why.
	if set, err := buildflags.New(); err == nil {
		for _, f := range buildflags.Flags(set) {
			if v, ok := f.(cli.VisibleFlag); ok && v.IsVisible() {
				fs = append(fs, f)
			}
		}
	}
	return fs
}

func withFlag(stage string) string { return stage[len("farm-"):] + "-with" }

// routes of the flags that do not simply go to farm-build.
var routes = map[string]route{
	"farm":           {stages: []string{Nodes}},
	"node":           {stages: []string{Nodes}},
	"local":          {stages: []string{Nodes}},
	"node-timeout":   {stages: []string{Nodes}, as: "timeout"},
	"node-cache-ttl": {stages: []string{Nodes}, as: "cache-ttl"},
	"emulate":        {stages: []string{Nodes}},
	"platforms":      {stages: []string{Plan}},
	"emulation":      {stages: []string{Plan}},
	"affinity":       {stages: []string{Plan}},
	"manifest":       {stages: []string{Manifest}, as: "ARG"},
	"allow-partial":  {stages: []string{Manifest}},
	"digestfile":     {stages: []string{Manifest}},
	"tls-verify":     {stages: []string{Build, Manifest}},
	"authfile":       {stages: []string{Build, Manifest}},
	"connection":     {stages: []string{Build, Manifest}},
	"url":            {stages: []string{Build, Manifest}},
	"log-level":      {stages: Order},
	"log-format":     {stages: Order},
	"nodes-with":     {},
	"plan-with":      {},
	"build-with":     {},
	"manifest-with":  {},
	"print":          {},
	"timeline":       {stages: []string{Timeline}, as: "output"}, // a stage of its own, only when given
}

func routeOf(name string) route {
	if r, ok := routes[name]; ok {
		return r
	}
	return route{stages: []string{Build}}
}

// FromFlags makes the pipeline the parsed flags of farm build ask for.
func FromFlags(c *cli.Context) (Pipeline, error) {
	if c.NArg() > 1 {
		return nil, fmt.Errorf("want at most one CONTEXT directory, got %d arguments", c.NArg())
	}
	args := map[string][]string{}
	swapped := map[string]string{}
	for _, s := range Order {
		if c.IsSet(withFlag(s)) {
			swapped[s] = c.String(withFlag(s))
		}
	}
	for _, f := range c.App.Flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		r := routeOf(name)
		for _, s := range r.stages {
			if _, ok := swapped[s]; ok {
				if len(r.stages) == 1 && name != "tag" { // -t is required, also with --build-with
					return nil, fmt.Errorf("--%s goes to %s, which --%s replaces: give it to your command instead", name, s, withFlag(s))
				}
				continue
			}
			args[s] = append(args[s], words(c, f, r.as)...)
		}
	}
	if _, ok := swapped[Build]; !ok {
		args[Build] = append(args[Build], preconnect(c)...)
	}
	dir := c.Args().First()
	if dir == "" {
		dir = "."
	}
	args[Build] = append(args[Build], dir)
	var p Pipeline
	for _, s := range Order {
		if s == Manifest && len(args[Timeline]) > 0 {
			p = append(p, Stage{Name: Timeline, Args: args[Timeline]})
		}
		if cmd, ok := swapped[s]; ok {
			p = append(p, Stage{Name: s, Shell: cmd})
		} else {
			p = append(p, Stage{Name: s, Args: args[s]})
		}
	}
	return p, nil
}

// preconnect has farm-build connect to the farm farm-nodes probes while it
// probes, rather than once the plan has arrived (farm-build --preconnect).
// Without --node or --farm the farm is every connection, and only those the
// plan names are connected to.
func preconnect(c *cli.Context) []string {
	var out []string
	for _, n := range c.StringSlice("node") {
		out = append(out, "--preconnect", n)
	}
	if f := c.String("farm"); f != "" {
		out = append(out, "--preconnect-farm", f)
	}
	return out
}

// words is a set flag as a stage's arguments: --name VALUE (repeated for
// a list), --name or --name=false for a boolean, the value alone for "ARG".
func words(c *cli.Context, f cli.Flag, as string) []string {
	names := f.Names()
	flag := "--" + names[0]
	if len(names) > 1 && len(names[1]) == 1 {
		flag = "-" + names[1] // -t and -f, as podman users type them
	}
	if as != "" && as != "ARG" {
		flag = "--" + as
	}
	var values []string
	switch f.(type) {
	case *cli.BoolFlag:
		if c.Bool(names[0]) {
			return []string{flag}
		}
		return []string{flag + "=false"}
	case *cli.StringSliceFlag:
		values = c.StringSlice(names[0])
	case *cli.IntFlag:
		values = []string{strconv.Itoa(c.Int(names[0]))}
	case *cli.DurationFlag:
		values = []string{c.Duration(names[0]).String()}
	default:
		values = []string{c.String(names[0])}
	}
	var out []string
	for _, v := range values {
		if as == "ARG" {
			out = append(out, v)
		} else {
			out = append(out, flag, v)
		}
	}
	return out
}
