package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/containers/image/v5/docker/reference"
	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/registry"
)

// RunOptions are farm-manifest's settings.
type RunOptions struct {
	// Stage names the reader in messages and error records.
	Stage string
	// Name is the list's name; empty: the images' tag.
	Name         string
	AllowPartial bool
	// Push, when set, pushes a list made locally and every image to it
	// (docker://... added when no transport is given).
	Push string
	// Format is the list type in a registry: oci or v2s2.
	Format   string
	Registry registry.Options
	// Local names the local store (--url, --connection).
	Local local.Request
	// DigestFile, when set, gets the digest of the list once it is in a
	// registry (Push, or images from farm-build --push), as podman manifest
	// push --digestfile writes it.
	DigestFile string
	// Terminal: out is a terminal, so write the list for a person instead
	// of records (see Output).
	Terminal bool
}

// ErrUsage matches (errors.Is) a Run error that is the user's choice of
// options or arguments: farm-manifest exits 2 for it.
var ErrUsage = errors.New("usage error")

type usageError struct{ error }

func (u usageError) Is(target error) bool { return target == ErrUsage }
func (u usageError) Unwrap() error        { return u.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Run is farm-manifest: read image records from in, make the list where
// the images are (local storage, or the registry farm-build --push pushed
// them to), push it if asked, and write one manifest record to out. Error
// records on in are passed on to out.
func Run(ctx context.Context, opts RunOptions, in io.Reader, out io.Writer, log *slog.Logger) error {
	imgs, failures, err := Read(opts.Stage, in)
	enc := NewOutput(out, opts.Terminal)
	enc.Images = imgs
	defer func() {
		if ctx.Err() == nil {
			enc.End(opts.Stage) // the last record: this stream is complete
		}
	}()
	for _, f := range failures {
		enc.Write(f) // errors pass through, so the end of the pipe sees them
	}
	if errors.Is(err, record.ErrTruncated) && len(imgs) > 0 {
		if !opts.AllowPartial {
			return fmt.Errorf("%w; not making a list of the %d images that arrived (--allow-partial would)", err, len(imgs))
		}
		log.Warn("making a list from a truncated stream", "images", len(imgs), "error", err)
		err = nil
	}
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		missing := DescribeFailures(failures)
		if !opts.AllowPartial {
			return fmt.Errorf("not making a list: %s failed upstream; fix it and run the pipeline again, or give --allow-partial", missing)
		}
		log.Warn("making a partial list", "missing", missing)
	}
	name := opts.Name
	if name == "" {
		if name, err = TagOf(imgs); err != nil {
			return usagef("%w; name the list: %s NAME", err, opts.Stage)
		}
	}
	pushed, err := Pushed(imgs)
	if err != nil {
		return err
	}
	if opts.DigestFile != "" && !pushed && opts.Push == "" {
		return usagef("--digestfile needs --push: the digest is the pushed list's")
	}
	var rec *record.Manifest
	if pushed {
		rec, err = inRegistry(ctx, name, imgs, opts, log)
	} else {
		rec, err = locally(ctx, name, imgs, opts, log)
	}
	if err != nil {
		return err
	}
	if opts.DigestFile != "" {
		if err := WriteDigestFile(opts.DigestFile, rec.Digest); err != nil {
			return err
		}
	}
	return enc.Write(rec)
}

// inRegistry: farm-build --push put the images in the registry already,
// and the list is made there, from their digests. --push DEST can only
// name that same place: the list cannot be copied elsewhere without the
// images.
func inRegistry(ctx context.Context, name string, imgs []*record.Image, opts RunOptions, log *slog.Logger) (*record.Manifest, error) {
	if opts.Push != "" {
		want, err := registryDest(name)
		if err != nil {
			return nil, err
		}
		if got := withTransport(opts.Push); got != want {
			return nil, usagef("--push %s: the images were pushed by farm-build --push, so the list is made where they are, %s; it cannot be pushed elsewhere (drop --push, or run farm-build -t with the destination)", opts.Push, want)
		}
	}
	rec, err := CreateInRegistry(ctx, name, imgs, opts.Format, opts.Registry)
	if err != nil {
		return nil, err
	}
	log.Info("manifest list pushed", "name", rec.Name, "digest", rec.Digest, "instances", len(rec.Instances))
	return rec, nil
}

// registryDest is where CreateInRegistry puts the list NAME.
func registryDest(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("list name %q: %w", name, err)
	}
	return "docker://" + reference.TagNameOnly(named).String(), nil
}

func withTransport(dest string) string {
	if strings.Contains(dest, "://") {
		return dest
	}
	return "docker://" + dest
}

// locally makes the list in the local podman storage, and pushes it when
// asked.
func locally(ctx context.Context, name string, imgs []*record.Image, opts RunOptions, log *slog.Logger) (*record.Manifest, error) {
	svc, err := local.OpenRequest(ctx, log, opts.Local)
	if err != nil {
		return nil, err
	}
	defer svc.Close()
	client, err := svc.Connect(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := Create(ctx, client, name, imgs, Options{})
	if err != nil {
		return nil, err
	}
	if opts.Push != "" {
		dest := withTransport(opts.Push)
		digest, err := Push(ctx, client, name, PushOptions{
			Destination: dest, TLSVerify: opts.Registry.TLSVerify, Authfile: opts.Registry.Authfile, Format: opts.Format,
		})
		if err != nil {
			return nil, err
		}
		rec.Pushed = dest
		if digest != "" {
			rec.Digest = digest
		}
	}
	log.Info("manifest list ready", "name", rec.Name, "instances", len(rec.Instances))
	return rec, nil
}
