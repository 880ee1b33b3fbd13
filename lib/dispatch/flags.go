package dispatch

import (
	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/transfer"
	"github.com/urfave/cli/v2"
)

// Flags are farm-build's flags: podman build's where they make sense on a
// farm. farm build, the one command for people, offers the same ones and
// hands them to farm-build.
func Flags() []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "tag", Aliases: []string{"t"}, Required: true, Usage: "`NAME[:TAG]` of the image, a full reference such as registry.example.com:5000/app:1.0 (\":latest\" when no tag; required)"},
		&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "the Containerfile to build, a `PATH` (default: Containerfile or Dockerfile in CONTEXT)"},
		&cli.StringSliceFlag{Name: "build-arg", Usage: "set build-time variable `ARG=VALUE` (ARG alone: its value here); repeatable (default: none)"},
		&cli.StringFlag{Name: "target", Usage: "build the `STAGE` of that name of a multi-stage Containerfile (default: the last stage)"},
		&cli.StringSliceFlag{Name: "label", Usage: "set image label `KEY=VALUE`; repeatable (default: none)"},
		&cli.BoolFlag{Name: "no-cache", Usage: "do not use the nodes' layer caches"},
		&cli.StringFlag{Name: "pull", Value: "missing", Usage: "`POLICY` for pulling base images on the nodes: missing, always, never or newer (write --pull=always)"},
		&cli.BoolFlag{Name: "layers", Value: true, Usage: "cache intermediate layers on the nodes (--layers=false to disable)"},
		&cli.StringFlag{Name: "format", Value: "oci", Usage: "image `FORMAT`: oci or docker"},
		&cli.BoolFlag{Name: "cleanup", Usage: "remove each built image from its node once it is safely in local storage"},
		&cli.IntFlag{Name: "jobs", Usage: "run at most `N` builds at once (0: all at once)"},
		&cli.DurationFlag{Name: "timeout", Usage: "give up on a job (build plus transfer) after this `DURATION`, e.g. 30m (0: no limit)"},
		&cli.BoolFlag{Name: "push", Usage: "instead of pulling images back, have each node push its image to the registry named by -t (as TAG-os-arch); farm-manifest then builds the list in the registry"},
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "with --push: require HTTPS and verify certificates"},
		&cli.StringFlag{Name: "authfile", EnvVars: []string{"REGISTRY_AUTH_FILE"}, Usage: "with --push: `PATH` of the registry credentials file, sent to the nodes for the push (default: podman's auth.json, as podman login writes it)"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "how to show the builds on stderr, `MODE`: tty (one live line per job: phase, step N/M, done or failed; the tail of a failed build's log), plain (every build line prefixed [platform@node]), or auto (tty on a terminal)"},
		&cli.StringFlag{Name: "archive-format", Value: transfer.DockerArchive, Usage: "how images travel back, `FORMAT`: docker-archive (uncompressed layers: fastest on a LAN) or oci-archive (gzipped on the node: better on a slow link)"},
		&cli.DurationFlag{Name: "transfer-cache-max-age", Value: transfer.DefaultCacheMaxAge, Usage: "with the registry transfer: before serving, prune pushes older than this `DURATION` from its cache (~/.cache/farm/registry), then garbage-collect their layers; skipped while another run uses the cache"},
		&cli.StringFlag{Name: "transfer", Value: transfer.ModeAuto, Usage: "how images come back, `MODE`: registry (each node pushes through its SSH connection to a registry farm-build runs on 127.0.0.1: only layers this machine lacks cross the link), archive (the whole image every time), or auto (registry where the node's SSH allows port forwarding, else archive, saying why)"},
	}
	fs = append(fs, local.Flags()...)
	// podman build flags that make no sense on a farm: the plan decides the
	// platforms and farm-manifest makes the list. Refuse them by name rather
	// than with "flag provided but not defined".
	for _, f := range []string{"platform", "manifest", "arch", "os", "variant", "all-platforms", "jobs-per-node"} {
		fs = append(fs, &cli.StringFlag{Name: f, Hidden: true})
	}
	return fs
}

// Refused are podman build's flags that make no sense on a farm (hidden in
// Flags), with what to do instead.
var Refused = map[string]string{
	"platform":      "the platforms come from the job records: choose them with farm-plan --platforms",
	"arch":          "the platforms come from the job records: choose them with farm-plan --platforms",
	"os":            "the platforms come from the job records: choose them with farm-plan --platforms",
	"variant":       "the platforms come from the job records: choose them with farm-plan --platforms",
	"all-platforms": "the platforms come from the job records: farm-plan plans every native platform by default",
	"manifest":      "the manifest list is made by the next stage: pipe farm-build into farm-manifest",
	"jobs-per-node": "not a farm-build flag; see --jobs",
}
