// Command farm-manifest makes one manifest list from farm-build's images.
package main

import (
	"errors"
	"io"
	"os"

	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/manifest"
	"github.com/farm-build/farm/lib/registry"
	"github.com/farm-build/farm/lib/stage"
	"github.com/urfave/cli/v2"
)

const name = "farm-manifest"

const description = `farm-manifest reads image records (from farm-build) on stdin and makes one
manifest list in local podman storage that names every image with its
os/arch/variant, checked against each image's own config. Afterwards
'podman manifest push --all NAME docker://DEST' publishes the multi-arch image
as it would after 'podman build --manifest', or give --push DEST.

When the images come from farm-build --push, they are already in the
registry: the list is then assembled there, from their digests, and nothing
is pulled to this machine.

NAME defaults to the tag in the image records. An existing list of that name
is replaced as a whole; two pipelines writing one name take turns and leave
one complete list. Nothing is made (exit 1) when an error record arrived, when
stdin ends without farm-build's end record (farm-build did not finish), when
no image record arrived, or when two images claim one platform; with
--allow-partial a list of what succeeded is made and the missing platforms are
named on stderr. Writes one manifest record, then the end record, on stdout.

Exit status: 0 when the list was made (and pushed), 1 when not, 2 for a usage
error, 130/143 when interrupted.

Environment:
   CONTAINER_HOST      the local store, where the list is made, as podman: this machine's
                       podman service, or a podman machine's (ssh://, over farm's own SSH:
                       strict known_hosts, an answer within 10 s); not used for images
                       from farm-build --push
   REGISTRY_AUTH_FILE  --authfile, as podman
   FARM_LOG_LEVEL      --log-level
   FARM_LOG_FORMAT     --log-format

Examples:
   farm-nodes --farm lab | farm-plan | farm-build -t localhost:5000/demo:latest . | farm-manifest
   farm-build -t quay.io/me/app:1.0 . < plan.jsonl | farm-manifest --push docker://quay.io/me/app:1.0
   farm-nodes | farm-plan > plan.jsonl; farm-build -t IMG . < plan.jsonl | farm-manifest   # a saved plan, replayed
   farm-manifest --allow-partial my-list < images.jsonl
   podman manifest push --all --tls-verify=false localhost:5000/demo:latest docker://localhost:5000/demo:latest`

func main() {
	stage.Main(newApp(os.Stdin))
}

// newApp builds farm-manifest reading records from stdin. stage.Main adds
// the common flags and sets the output writers; tests set them themselves.
func newApp(stdin io.Reader) *cli.App {
	return &cli.App{
		Name:        name,
		Usage:       "make one manifest list from farm-build's images",
		UsageText:   "farm-manifest [--push DEST] [--allow-partial] [NAME] < images.jsonl",
		Description: description,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "allow-partial", Usage: "make a list of the platforms that succeeded even when others failed, or when farm-build did not finish (its output has no end record)"},
			&cli.StringFlag{Name: "push", Usage: "then push the list and every image to `DEST` (e.g. docker://registry.example.com/app:1.0), as podman manifest push --all does; for images from farm-build --push the list is made in their registry, and DEST must name that list (default: no push)"},
			&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "registry access (--push, or images from farm-build --push): require HTTPS and verify certificates"},
			&cli.StringFlag{Name: "authfile", EnvVars: []string{"REGISTRY_AUTH_FILE"}, Usage: "registry access: `PATH` of the credentials file (default: podman's auth.json, as podman login writes it)"},
			&cli.StringFlag{Name: "digestfile", Usage: "once the list is in a registry (--push, or images from farm-build --push), write its digest to the file `PATH`, as podman manifest push --digestfile (default: none)"},
			&cli.StringFlag{Name: "format", Value: "oci", Usage: "manifest list `TYPE` in the registry: oci (image index) or v2s2 (Docker manifest list)"},
		}, local.Flags()...),
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
			err = manifest.Run(c.Context, opts, stdin, c.App.Writer, log)
			if errors.Is(err, manifest.ErrUsage) {
				return stage.UsageError{Err: err}
			}
			return err
		},
	}
}

// options turns the flags into manifest.RunOptions; every mistake is a
// usage error.
func options(c *cli.Context, stdin io.Reader) (manifest.RunOptions, error) {
	if c.NArg() > 1 {
		return manifest.RunOptions{}, stage.Usagef("want at most one NAME, got %d arguments", c.NArg())
	}
	if f := c.String("format"); f != "oci" && f != "v2s2" {
		return manifest.RunOptions{}, stage.Usagef("--format %q: want oci or v2s2", f)
	}
	if f, ok := stdin.(*os.File); ok && stage.IsTerminal(f) {
		return manifest.RunOptions{}, stage.Usagef("stdin is a terminal; farm-manifest reads image records: ... | farm-build -t IMG . | farm-manifest")
	}
	return manifest.RunOptions{
		Stage: name, Name: c.Args().First(), AllowPartial: c.Bool("allow-partial"), Push: c.String("push"), Format: c.String("format"),
		DigestFile: c.String("digestfile"), Terminal: stage.IsTerminal(os.Stdout),
		Registry: registry.Options{TLSVerify: c.Bool("tls-verify"), Authfile: c.String("authfile")},
		Local:    local.RequestFrom(c),
	}, nil
}
