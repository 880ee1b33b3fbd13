// Package manifest turns image records into one manifest list in local
// podman storage, whole or not at all, and pushes it.
package manifest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containers/common/pkg/retry"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/podman/v4/pkg/bindings/manifests"
	"github.com/containers/storage/pkg/stringid"
	"github.com/farm-build/farm/lib/namelock"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/registry"
	"github.com/opencontainers/go-digest"
)

// Check validates the images that will make up a list: at least one, one per
// platform. It is pure, so its rules are tested without podman.
func Check(imgs []*record.Image) error {
	if len(imgs) == 0 {
		return errors.New("no image records on stdin; pipe farm-build into farm-manifest")
	}
	seen := map[string]string{}
	for _, img := range imgs {
		p, err := platform.Canonical(img.Platform)
		if err != nil {
			return fmt.Errorf("image %s: %w", img.ID, err)
		}
		if other, dup := seen[p]; dup {
			return fmt.Errorf("two images claim %s (%s and %s); a manifest list holds one image per platform: were two runs' records mixed, or a platform planned twice? keep one", p, stringid.TruncateID(other), stringid.TruncateID(img.ID))
		}
		seen[p] = img.ID
	}
	return nil
}

// Options for Create.
type Options struct {
	// LockDir holds the lock files that serialise writers of one list name
	// on this machine.
	LockDir string
}

// Create makes the list NAME from imgs in local storage (local: the local
// podman service). An existing list of
// that name is replaced as a whole; two writers of one name take turns, so
// the list is always one writer's complete set. The platforms of each entry
// come from the record, checked against the image's own config.
func Create(ctx context.Context, client *podman.Client, name string, imgs []*record.Image, opts Options) (*record.Manifest, error) {
	local := client.Bind(ctx)
	if err := Check(imgs); err != nil {
		return nil, err
	}
	slices.SortFunc(imgs, byPlatform)
	plats := make([]platform.Platform, len(imgs))
	for i, img := range imgs {
		p, err := verifyPlatform(local, img)
		if err != nil {
			return nil, err
		}
		plats[i] = p
	}

	unlock, err := namelock.Lock(ctx, opts.LockDir, name)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if err := removeExisting(local, name); err != nil {
		return nil, err
	}
	// The per-platform tags name this list's images, whatever a run of
	// the same tag did meanwhile: the list and its tags come from one run,
	// and every member is tagged, so `podman image prune` keeps it.
	if err := tagMembers(local, opts.LockDir, imgs); err != nil {
		return nil, err
	}
	id, err := manifests.Create(local, name, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("creating manifest list %s: %w", name, err)
	}
	for i, img := range imgs {
		p := plats[i]
		opts := &manifests.AddOptions{Images: []string{"containers-storage:" + img.ID}}
		opts.WithOS(p.OS).WithArch(p.Arch)
		if p.Variant != "" {
			opts.WithVariant(p.Variant)
		}
		if _, err := manifests.Add(local, name, opts); err != nil {
			// Never leave a half-made list behind.
			cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(local), 30*time.Second)
			defer cancel()
			manifests.Delete(cleanupCtx, name)
			return nil, fmt.Errorf("adding %s (%s) to %s: %w", p, stringid.TruncateID(img.ID), name, err)
		}
	}
	return describe(local, name, id)
}

// verifyPlatform reads the image's config: the record names the platform,
// the image must agree, so a list never lies about an entry.
func verifyPlatform(local context.Context, img *record.Image) (platform.Platform, error) {
	want, err := platform.Parse(img.Platform)
	if err != nil {
		return want, err
	}
	inspect, err := images.GetImage(local, img.ID, nil)
	if err != nil {
		return want, fmt.Errorf("image %s (%s) is not in local storage: %w; was it removed since farm-build ran (podman image prune, podman rmi)? run farm-build again", stringid.TruncateID(img.ID), want, err)
	}
	// podman's inspect does not report the variant: the record's stands.
	got, err := platform.FromParts(inspect.Os, inspect.Architecture, want.Variant)
	if err != nil {
		return want, fmt.Errorf("image %s: %w", stringid.TruncateID(img.ID), err)
	}
	if got.OS != want.OS || got.Arch != want.Arch {
		return want, fmt.Errorf("image %s is %s by its config, but its record says %s; was the record edited, or the tag moved? run farm-build again", stringid.TruncateID(img.ID), got, want)
	}
	return want, nil
}

// tagMembers points each image's per-platform tag (its record's ref) at it,
// each under that tag's lock: a farm-build of the same tag names the image
// it pulled back, or gives the tag back on interrupt, under the same lock
// (see transfer.Puller).
func tagMembers(local context.Context, lockDir string, imgs []*record.Image) error {
	for _, img := range imgs {
		if img.Ref == "" {
			continue // a hand-written record: nothing to keep in step
		}
		named, err := reference.ParseNormalizedNamed(img.Ref)
		if err != nil {
			return fmt.Errorf("image %s: ref %q: %w", img.Platform, img.Ref, err)
		}
		tagged, ok := named.(reference.NamedTagged)
		if !ok {
			continue // not a per-platform tag (a hand-written record)
		}
		unlock, err := namelock.Lock(local, lockDir, img.Ref)
		if err != nil {
			return err
		}
		err = images.Tag(local, img.ID, tagged.Tag(), tagged.Name(), nil)
		unlock()
		if err != nil {
			return fmt.Errorf("tagging %s as %s: %w", stringid.TruncateID(img.ID), img.Ref, err)
		}
	}
	return nil
}

func removeExisting(local context.Context, name string) error {
	exists, err := manifests.Exists(local, name, nil)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if exists {
		if _, err := manifests.Delete(local, name); err != nil {
			return fmt.Errorf("replacing manifest list %s: %w", name, err)
		}
		return nil
	}
	// A plain image of that name would make the list name ambiguous.
	if ok, _ := images.Exists(local, name, nil); ok {
		return fmt.Errorf("%s names an image, not a manifest list; choose another name or remove it (podman rmi %s)", name, name)
	}
	return nil
}

func describe(local context.Context, name, id string) (*record.Manifest, error) {
	list, err := manifests.Inspect(local, name, nil)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", name, err)
	}
	rec := &record.Manifest{Name: name, ID: id}
	for _, m := range list.Manifests {
		p := platform.Platform{OS: m.Platform.OS, Arch: m.Platform.Architecture, Variant: m.Platform.Variant}
		rec.Instances = append(rec.Instances, record.Instance{Platform: p.String(), Digest: m.Digest.String()})
	}
	raw, err := list.Serialize()
	if err == nil {
		rec.Digest = digest.FromBytes(raw).String()
	}
	return rec, nil
}

// PushOptions for Push.
type PushOptions struct {
	Destination string
	TLSVerify   bool
	Authfile    string
	// Format is the list type in the registry: oci or v2s2.
	Format string
}

// Push publishes the list and every image in it, as `podman manifest push
// --all` does, retrying with backoff when the registry fails.
func Push(ctx context.Context, client *podman.Client, name string, opts PushOptions) (string, error) {
	local := client.Bind(ctx)
	all, skip := true, !opts.TLSVerify
	popts := &images.PushOptions{All: &all, SkipTLSVerify: &skip}
	if opts.Authfile != "" {
		popts.WithAuthfile(opts.Authfile)
	}
	switch opts.Format {
	case "oci":
		popts.WithFormat("oci")
	case "v2s2":
		popts.WithFormat("v2s2")
	}
	var digest string
	err := retry.IfNecessary(ctx, func() error {
		d, err := manifests.Push(local, name, opts.Destination, popts)
		digest = d
		return err
	}, &retry.Options{MaxRetry: 3}) // 1 s, 2 s, 4 s apart
	if err != nil {
		return "", fmt.Errorf("pushing %s to %s: %w; check the destination, your credentials (podman login, --authfile) and, for a plain-HTTP registry, --tls-verify=false", name, opts.Destination, err)
	}
	return digest, nil
}

func byPlatform(a, b *record.Image) int { return strings.Compare(a.Platform, b.Platform) }

// Pushed reports whether the images were pushed by the nodes (farm-build
// --push) rather than pulled back; a mix is an error: the list would have to
// live in two places.
func Pushed(imgs []*record.Image) (bool, error) {
	pushed := 0
	for _, img := range imgs {
		if img.Transfer == "push" {
			pushed++
		}
	}
	if pushed != 0 && pushed != len(imgs) {
		return false, fmt.Errorf("%d of %d images were pushed to a registry and the others pulled back; run farm-build with or without --push for all", pushed, len(imgs))
	}
	return pushed > 0, nil
}

// CreateInRegistry assembles the list NAME in the registry from images the
// nodes pushed there, by digest: nothing is pulled to this machine.
func CreateInRegistry(ctx context.Context, name string, imgs []*record.Image, format string, opts registry.Options) (*record.Manifest, error) {
	if err := Check(imgs); err != nil {
		return nil, err
	}
	dest, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("list name %q: %w", name, err)
	}
	tagged, ok := reference.TagNameOnly(dest).(reference.NamedTagged)
	if !ok {
		return nil, fmt.Errorf("list name %q: want a tag, not a digest", name)
	}
	slices.SortFunc(imgs, byPlatform)
	rec := &record.Manifest{Name: tagged.String(), Pushed: "docker://" + tagged.String()}
	var instances []registry.Instance
	for _, img := range imgs {
		p, err := platform.Parse(img.Platform)
		if err != nil {
			return nil, err
		}
		ref, err := reference.ParseNormalizedNamed(img.Ref)
		if err != nil {
			return nil, fmt.Errorf("image %s: ref %q: %w", p, img.Ref, err)
		}
		if ref.Name() != tagged.Name() {
			return nil, fmt.Errorf("image %s was pushed to %s, not to the list's repository %s; a list can only name images of its own repository", p, ref.Name(), tagged.Name())
		}
		d, err := digest.Parse(img.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: digest %q: %w", p, img.Digest, err)
		}
		instances = append(instances, registry.Instance{Platform: p, Digest: d})
		rec.Instances = append(rec.Instances, record.Instance{Platform: p.String(), Digest: d.String()})
	}
	d, err := registry.PutList(ctx, tagged, instances, format, opts)
	if err != nil {
		return nil, err
	}
	rec.Digest = d.String()
	return rec, nil
}
