package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/containers/image/v5/docker/reference"
	"github.com/farm-build/farm/lib/platform"
)

// PlatformTag is the per-platform tag of the image for plat: TAG-os-arch
// [-variant]; when that is over 128 characters, TAG is cut short and a hash
// of it added (TAG[:n]-HASH12-os-arch), so every platform keeps its own tag. It keeps each platform's image named in local storage, so that
// `podman image prune` before `podman manifest push --all` cannot remove it,
// and lets two platforms built on one node not steal each other's tag.
func PlatformTag(tag string, plat platform.Platform) (string, error) {
	named, err := ParseTag(tag)
	if err != nil {
		return "", err
	}
	suffix := plat.OS + "-" + plat.Arch
	if plat.Variant != "" {
		suffix += "-" + plat.Variant
	}
	t := named.Tag() + "-" + suffix
	if len(t) > maxTag {
		// Cutting the end would cut the platform off, and give every
		// platform the same tag. Cut the user's tag instead and mark it
		// with a hash of the whole, so two long tags stay apart too.
		sum := sha256.Sum256([]byte(named.Tag()))
		mark := "-" + hex.EncodeToString(sum[:])[:12]
		t = named.Tag()[:maxTag-len(mark)-1-len(suffix)] + mark + "-" + suffix
	}
	return named.Name() + ":" + t, nil
}

// maxTag is the longest tag a reference may have.
const maxTag = 128

// ParseTag checks a -t reference: a full name with a tag (":latest" when
// none is given), never a digest. host:port/repo:tag is fine.
func ParseTag(tag string) (reference.NamedTagged, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return nil, fmt.Errorf("-t %q: %w", tag, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, fmt.Errorf("-t %q: a digest cannot be a build's name; give a tag", tag)
	}
	return reference.TagNameOnly(named).(reference.NamedTagged), nil
}
