package buildflags

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containers/buildah/pkg/parse"
	"github.com/farm-build/farm/lib/buildctx"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/dispatch"
	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/transfer"
	"github.com/urfave/cli/v2"
)

// Flags are farm-build's flags: its own, then podman build's. farm build,
// the one command for people, offers the same ones and hands them to
// farm-build.
func Flags(s *Set) []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "tag", Aliases: []string{"t"}, Required: true, Usage: "`NAME[:TAG]` of the image, a full reference such as registry.example.com:5000/app:1.0 (\":latest\" when no tag; required)"},
		&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "the Containerfile to build, a `PATH` (default: Containerfile or Dockerfile in CONTEXT)"},
		&cli.StringFlag{Name: "iidfile", Usage: "write each platform's image ID to `FILE`-os-arch[-variant], as podman writes --iidfile (default: none)"},
		&cli.BoolFlag{Name: "cleanup", Usage: "remove each built image from its node once it is safely in local storage"},
		&cli.IntFlag{Name: "jobs", Usage: "run at most `N` builds at once (0: all at once)"},
		&cli.DurationFlag{Name: "timeout", Usage: "give up on a job (build plus transfer) after this `DURATION`, e.g. 30m (0: no limit); the local store must answer within 10s, or this when shorter"},
		&cli.BoolFlag{Name: "push", Usage: "instead of pulling images back, have each node push its image to the registry named by -t (as TAG-os-arch); farm-manifest then builds the list in the registry"},
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "with --push: require HTTPS and verify certificates"},
		&cli.StringFlag{Name: "authfile", EnvVars: []string{"REGISTRY_AUTH_FILE"}, Usage: "with --push: `PATH` of the registry credentials file, sent to the nodes for the push (default: podman's auth.json, as podman login writes it)"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "how to show the builds on stderr, `MODE`: tty (one live line per job: phase, step N/M, done or failed; the tail of a failed build's log), plain (every build line prefixed [platform@node]), or auto (tty on a terminal)"},
		&cli.StringFlag{Name: "archive-format", Value: transfer.DockerArchive, Usage: "how images travel back, `FORMAT`: docker-archive (uncompressed layers: fastest on a LAN) or oci-archive (gzipped on the node: better on a slow link)"},
		&cli.StringFlag{Name: "transfer-compression", Value: transfer.CompressionAuto, Usage: "with the registry transfer: how nodes compress the layers they push, `FORMAT`: gzip, zstd, or auto (see docs/transfer.md)"},
		&cli.DurationFlag{Name: "transfer-cache-max-age", Value: transfer.DefaultCacheMaxAge, Usage: "with the registry transfer: before serving, prune pushes older than this `DURATION` from its cache (~/.cache/farm/registry), then garbage-collect their layers; skipped while another run uses the cache"},
		&cli.StringFlag{Name: "layer-cache", Value: LayerCacheNode, Usage: "where builds find the layers of earlier builds, `WHERE`: node (each node's own layer cache, as podman build) or farm (also one cache all nodes share, in the transfer registry on this machine: every step a node builds is pushed there and a build on any node pulls the steps it finds instead of running them, as podman build --cache-to/--cache-from; the build then reaches registries with --tls-verify=false)"},
		&cli.StringFlag{Name: "transfer", Value: transfer.ModeAuto, Usage: "how images come back, `MODE`: registry (each node pushes through its SSH connection to a registry farm-build runs on 127.0.0.1: only layers the local store lacks cross the link; a local store behind SSH pulls through a forward on its own connection), archive (the whole image every time), or auto (registry where the node's SSH allows port forwarding and the local store reaches the registry, probed once per run, else archive, saying why)"},
		&cli.StringSliceFlag{Name: "preconnect", Usage: "connect to the system connections `NAME`[,NAME...] at once, while farm-nodes and farm-plan still work, rather than when the plan names them: the nodes the plan is expected to use (farm build passes its --node); a name the plan does not use costs one connection (default: none)"},
		&cli.StringFlag{Name: "preconnect-farm", Usage: "as --preconnect, for every node of the farm `NAME` from containers.conf, which farm build passes from its --farm (default: none)"},
		// podman farm build's, refused by name rather than "flag provided
		// but not defined".
		&cli.StringFlag{Name: "jobs-per-node", Hidden: true},
	}
	fs = append(fs, local.Flags()...)
	return append(fs, s.CLIFlags()...)
}

// Spec makes the build spec from the command line, refusing what podman
// would refuse and what farm-build cannot do. The secret files it returns
// must go into the context archive, at its root, as podman-remote sends
// them; the node's service moves them out of the context before the build.
func Spec(c *cli.Context, s *Set) (dispatch.Spec, []buildctx.Extra, error) {
	if err := checkFarmFlags(c); err != nil {
		return dispatch.Spec{}, nil, err
	}
	if err := s.Load(c); err != nil {
		return dispatch.Spec{}, nil, err
	}
	opts, err := s.Options()
	if err != nil {
		return dispatch.Spec{}, nil, err
	}
	secrets, sent, err := secrets(opts.CommonBuildOpts.Secrets)
	if err != nil {
		return dispatch.Spec{}, nil, err
	}
	return dispatch.Spec{Options: *opts, Secrets: sent, FarmCache: c.String("layer-cache") == LayerCacheFarm}, secrets, nil
}

// secrets checks each --secret as podman does and rewrites its src as
// podman-remote does: the file goes in the context under a name of its
// own, and src names it there. A missing file is an error naming the id.
// Secrets read from environment variables are refused: podman-remote 4.9
// sends the variable's name, and the node's service would read its own
// environment, not this machine's.
func secrets(values []string) ([]buildctx.Extra, []string, error) {
	if _, err := parse.Secrets(values); err != nil && !os.IsNotExist(unwrapAll(err)) {
		return nil, nil, fmt.Errorf("--secret: %w", err)
	}
	var files []buildctx.Extra
	var sent []string
	for _, v := range values {
		var id, src, typ string
		var rest []string
		for _, tok := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(tok, "=")
			switch k {
			case "id":
				id = val
			case "src":
				src = val
			case "env":
				src, typ = val, "env"
			case "type":
				typ = val
			}
			if k != "src" && k != "id" {
				rest = append(rest, tok)
			}
		}
		if src == "" {
			src = id
		}
		if typ == "" {
			if _, ok := os.LookupEnv(id); ok {
				typ = "env"
			}
		}
		if typ == "env" {
			return nil, nil, fmt.Errorf("--secret id=%s: secrets from environment variables are not supported by farm-build: the node's podman would read its own environment; put the value in a file and give src=FILE", id)
		}
		abs, err := filepath.Abs(src)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("--secret id=%s: %w", id, err)
		}
		sum := sha256.Sum256([]byte(id))
		name := "podman-build-secret-" + hex.EncodeToString(sum[:8])
		files = append(files, buildctx.Extra{Name: name, Path: abs, What: "secret id=" + id})
		sent = append(sent, strings.Join(append([]string{"id=" + id, "src=" + name}, rest...), ","))
	}
	return files, sent, nil
}

// ContextDir is the CONTEXT argument, the working directory by default.
func ContextDir(c *cli.Context) string {
	if dir := c.Args().First(); dir != "" {
		return dir
	}
	return "."
}

// checkFarmFlags checks the values of farm-build's own flags.
func checkFarmFlags(c *cli.Context) error {
	if c.NArg() > 1 {
		return fmt.Errorf("want at most one CONTEXT directory, got %d arguments", c.NArg())
	}
	if c.IsSet("jobs-per-node") {
		return fmt.Errorf("--jobs-per-node is not supported by farm-build: not a farm-build flag; see --jobs")
	}
	if _, err := dispatch.ParseTag(c.String("tag")); err != nil {
		return err
	}
	if err := transfer.CheckMode(c.String("transfer")); err != nil {
		return fmt.Errorf("--transfer: %w", err)
	}
	if f := c.String("archive-format"); f != transfer.DockerArchive && f != transfer.OCIArchive {
		return fmt.Errorf("--archive-format %q: want docker-archive or oci-archive", f)
	}
	if err := transfer.CheckCompression(c.String("transfer-compression")); err != nil {
		return fmt.Errorf("--transfer-compression: %w", err)
	}
	return checkLayerCache(c)
}

// --layer-cache values.
const (
	LayerCacheNode = "node"
	LayerCacheFarm = "farm"
)

// checkLayerCache refuses what the farm-wide layer cache cannot do.
func checkLayerCache(c *cli.Context) error {
	switch c.String("layer-cache") {
	case LayerCacheNode:
		return nil
	case LayerCacheFarm:
	default:
		return fmt.Errorf("--layer-cache %q: want node or farm", c.String("layer-cache"))
	}
	if c.Bool("push") {
		return fmt.Errorf("--layer-cache farm keeps the cache in the transfer registry, which --push does not run; use --cache-to/--cache-from with a registry of yours")
	}
	for _, f := range []string{"cache-from", "cache-to"} {
		if c.IsSet(f) {
			return fmt.Errorf("--layer-cache farm sets --%s itself (to the transfer registry); give one or the other", f)
		}
	}
	return nil
}

// Preconnect resolves --preconnect and --preconnect-farm to the system
// connections farm-nodes would use for --node and --farm.
func Preconnect(c *cli.Context) ([]conn.Target, error) {
	// farm-build's flag parser leaves commas alone (build args hold
	// them), so this list is split here, as farm-nodes reads --node.
	nodes, farm := conn.SplitList(c.StringSlice("preconnect")), c.String("preconnect-farm")
	if len(nodes) == 0 && farm == "" {
		return nil, nil
	}
	if len(nodes) > 0 && farm != "" {
		return nil, errors.New("--preconnect and --preconnect-farm exclude each other, as farm-nodes' --node and --farm")
	}
	inv, err := conn.Load(conn.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("--preconnect: %w", err)
	}
	targets, err := inv.Select(nodes, farm)
	if err != nil {
		return nil, fmt.Errorf("--preconnect: %w", err)
	}
	return targets, nil
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
