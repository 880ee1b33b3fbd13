// Command farm-nodes lists the nodes of a build farm and what each can build.
package main

import (
	"errors"
	"os"
	"strings"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/stage"
	"github.com/urfave/cli/v2"
)

const description = `farm-nodes asks every podman service of the farm, in parallel, what it is:
its native platform, the foreign platforms it can build by emulation (qemu
binfmt_misc registrations), its cpus, memory and podman version. It writes one
node record per node on stdout for farm-plan (JSON Lines; docs/records.md), or
a table when stdout is a terminal. A node that cannot be reached within
--timeout is still a record, with "error" set, so the plan can go around it.
What a node's podman info says is kept for --cache-ttl (podman computes it
from its whole store: most of a probe); every probe still connects, and reads
the load, free space and emulation afresh.

The farm is --node a,b (an ad-hoc farm of system connections), --farm NAME (a
farm in containers.conf [farms]), or, with neither, every system connection
(podman system connection list). SSH host keys must already be in
known_hosts: an unknown or changed key is refused, never accepted silently.

Exit status: 0 when at least one node answered, 1 when none did, 2 for a
usage error.

Environment:
   CONTAINERS_CONF          read system connections and [farms] from this containers.conf only,
                            as podman does (default: podman's containers.conf files)
   PODMAN_CONNECTIONS_CONF  podman 5's connections file
                            (default: ~/.config/containers/podman-connections.json)
   CONTAINER_SSHKEY         SSH private key for connections that name no identity, as podman
   SSH_AUTH_SOCK            the ssh-agent to ask for keys; a key with a passphrase needs one,
                            since farm never prompts (stdin carries records)
   FARM_KNOWN_HOSTS         known_hosts files, colon-separated
                            (default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)
   CONTAINER_HOST           with --local: this machine's podman service, as podman
   FARM_LOG_LEVEL           --log-level
   FARM_LOG_FORMAT          --log-format

Examples:
   farm-nodes                                 # every system connection, as a table on a terminal
   farm-nodes --farm lab --format json        # the farm "lab", as records
   farm-nodes --node lab-1,lab-2 --timeout 5s
   farm-nodes --node arm-box --emulate arm-box=linux/riscv64
   farm-nodes --farm lab | farm-plan | farm-build -t registry.example.com/app:1.0 . | farm-manifest
   farm-nodes --farm lab | farm-plan > plan.jsonl             # save a plan...
   farm-build -t registry.example.com/app:1.0 . < plan.jsonl | farm-manifest   # ...and replay it`

func main() {
	stage.Main(newApp())
}

// newApp builds farm-nodes. stage.Main adds the common flags and sets the
// output writers; tests set them themselves.
func newApp() *cli.App {
	return &cli.App{
		Name:        "farm-nodes",
		Usage:       "list the nodes of a build farm and what each can build",
		UsageText:   "farm-nodes [--node NAME,... | --farm NAME] [--local] [--timeout 10s] [--format json|table|wide]",
		Description: description,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "node", Usage: "use the system connections `NAME`[,NAME...] as an ad-hoc farm; repeatable (default: every system connection, unless --farm)"},
			&cli.StringFlag{Name: "farm", Usage: "use the farm `NAME` from containers.conf [farms] (default: none; every system connection unless --node)"},
			&cli.BoolFlag{Name: "local", Usage: `also use this machine's podman service, as node "local"`},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "give up on a node that has not answered within this `DURATION`"},
			&cli.StringFlag{Name: "format", Usage: "output `FORMAT`: json (records), table (fits 100 columns: long platform lists summarised, errors under the table) or wide (a table with everything) (default: table on a terminal, json otherwise)"},
			&cli.StringSliceFlag{Name: "emulate", Usage: "declare that NODE can build PLATFORM[,PLATFORM] by emulation where detection cannot see it: `NODE=PLATFORMS`; repeatable (default: what each node reports)"},
			&cli.DurationFlag{Name: "cache-ttl", Value: node.DefaultInfoCacheTTL, Usage: "reuse what a node's podman info said (platform, podman version, cpus, memory, rootless, cgroups, storage path) for this `DURATION`, while its service answers with the same podman version (the load, free space and emulation are read every time); 0 asks every node's podman info. Cache: ~/.cache/farm/nodes"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return stage.UsageError{Err: err}
		},
		Action: func(c *cli.Context) error {
			opts, err := options(c)
			if err != nil {
				return err
			}
			log, err := stage.Logger(c, c.App.ErrWriter)
			if err != nil {
				return err
			}
			err = node.Run(c.Context, opts, c.App.Writer, log)
			if errors.Is(err, conn.ErrNodeAndFarm) {
				return stage.UsageError{Err: err}
			}
			return err
		},
	}
}

// options turns the flags into node.RunOptions; every mistake is a usage
// error.
func options(c *cli.Context) (node.RunOptions, error) {
	if c.NArg() > 0 {
		return node.RunOptions{}, stage.Usagef("unexpected argument %q; farm-nodes takes only flags", c.Args().First())
	}
	format := c.String("format")
	if format == "" {
		format = "json"
		if f, ok := c.App.Writer.(*os.File); ok && stage.IsTerminal(f) {
			format = "table"
		}
	}
	if format != "json" && format != "table" && format != "wide" {
		return node.RunOptions{}, stage.Usagef("--format %q: want json, table or wide", format)
	}
	if c.Duration("cache-ttl") < 0 {
		return node.RunOptions{}, stage.Usagef("--cache-ttl %s: want a duration of 0 or more", c.Duration("cache-ttl"))
	}
	declared, err := parseDeclared(c.StringSlice("emulate"))
	if err != nil {
		return node.RunOptions{}, err
	}
	return node.RunOptions{
		Stage: c.App.Name, Nodes: conn.SplitList(c.StringSlice("node")), Farm: c.String("farm"), Local: c.Bool("local"), Table: format != "json", Wide: format == "wide",
		Probe: node.Options{Timeout: c.Duration("timeout"), SSH: conn.DefaultSSHOptions(), Declared: declared, Cache: node.InfoCache{TTL: c.Duration("cache-ttl")}},
	}, nil
}

func parseDeclared(values []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range values {
		name, plats, ok := strings.Cut(v, "=")
		if !ok || name == "" || plats == "" {
			return nil, stage.Usagef("--emulate %q: want NODE=PLATFORM[,PLATFORM]", v)
		}
		out[name] = append(out[name], conn.SplitList([]string{plats})...)
	}
	return out, nil
}
