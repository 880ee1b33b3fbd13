// Command farm-manifest makes one manifest list from farm-build's images.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/manifest"
	"github.com/farm-build/farm/lib/record"
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
   CONTAINER_HOST      this machine's podman service, where the list is made, as podman
                       (default: podman's socket, else a private podman service for the run;
                       not used for images from farm-build --push)
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
	stage.Main(&cli.App{
		Name:        name,
		Usage:       "make one manifest list from farm-build's images",
		UsageText:   "farm-manifest [--push DEST] [--allow-partial] [NAME] < images.jsonl",
		Description: description,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "allow-partial", Usage: "make a list of the platforms that succeeded even when others failed, or when farm-build did not finish (its output has no end record)"},
			&cli.StringFlag{Name: "push", Usage: "then push the list and every image to `DEST` (e.g. docker://registry.example.com/app:1.0), as podman manifest push --all does (default: no push)"},
			&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "registry access (--push, or images from farm-build --push): require HTTPS and verify certificates"},
			&cli.StringFlag{Name: "authfile", EnvVars: []string{"REGISTRY_AUTH_FILE"}, Usage: "registry access: `PATH` of the credentials file (default: podman's auth.json, as podman login writes it)"},
			&cli.StringFlag{Name: "format", Value: "oci", Usage: "manifest list `TYPE` in the registry: oci (image index) or v2s2 (Docker manifest list)"},
		},
		Action: run,
	})
}

func run(c *cli.Context) error {
	if c.NArg() > 1 {
		return stage.Usagef("want at most one NAME, got %d arguments", c.NArg())
	}
	if f := c.String("format"); f != "oci" && f != "v2s2" {
		return stage.Usagef("--format %q: want oci or v2s2", f)
	}
	if stage.IsTerminal(os.Stdin) {
		return stage.Usagef("stdin is a terminal; farm-manifest reads image records: ... | farm-build -t IMG . | farm-manifest")
	}
	log, err := stage.Logger(c, os.Stderr)
	if err != nil {
		return err
	}
	imgs, failures, err := manifest.Read(name, os.Stdin)
	out := record.NewEncoder(os.Stdout)
	defer func() {
		if c.Context.Err() == nil {
			out.End(name) // the last record: this stream is complete
		}
	}()
	for _, f := range failures {
		out.Write(f) // errors pass through, so the end of the pipe sees them
	}
	if errors.Is(err, record.ErrTruncated) && len(imgs) > 0 {
		if !c.Bool("allow-partial") {
			return fmt.Errorf("%w; not making a list of the %d images that arrived (--allow-partial would)", err, len(imgs))
		}
		log.Warn("making a list from a truncated stream", "images", len(imgs), "error", err)
		err = nil
	}
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		missing := manifest.DescribeFailures(failures)
		if !c.Bool("allow-partial") {
			return fmt.Errorf("not making a list: %s failed upstream; fix it and run the pipeline again, or give --allow-partial", missing)
		}
		log.Warn("making a partial list", "missing", missing)
	}
	listName := c.Args().First()
	if listName == "" {
		if listName, err = manifest.TagOf(imgs); err != nil {
			return stage.UsageError{Err: fmt.Errorf("%w; name the list: farm-manifest NAME", err)}
		}
	}

	pushed, err := manifest.Pushed(imgs)
	if err != nil {
		return err
	}
	if pushed {
		// farm-build --push: the images are in the registry already, and so
		// is the list, made there from their digests.
		rec, err := manifest.CreateInRegistry(c.Context, listName, imgs, c.String("format"),
			registry.Options{TLSVerify: c.Bool("tls-verify"), Authfile: c.String("authfile")})
		if err != nil {
			return err
		}
		log.Info("manifest list pushed", "name", rec.Name, "digest", rec.Digest, "instances", len(rec.Instances))
		return out.Write(rec)
	}

	svc, err := local.Open(c.Context, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	api, err := svc.Connect(c.Context)
	if err != nil {
		return err
	}
	rec, err := manifest.Create(c.Context, api, listName, imgs, manifest.Options{})
	if err != nil {
		return err
	}
	if dest := c.String("push"); dest != "" {
		if !strings.Contains(dest, "://") {
			dest = "docker://" + dest
		}
		digest, err := manifest.Push(c.Context, api, listName, manifest.PushOptions{
			Destination: dest, TLSVerify: c.Bool("tls-verify"), Authfile: c.String("authfile"), Format: c.String("format"),
		})
		if err != nil {
			return err
		}
		rec.Pushed = dest
		if digest != "" {
			rec.Digest = digest
		}
	}
	log.Info("manifest list ready", "name", rec.Name, "instances", len(rec.Instances))
	return out.Write(rec)
}
