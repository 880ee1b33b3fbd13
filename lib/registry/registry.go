// Package registry is farm's path for users with a registry and slow links:
// each node pushes its image straight to the registry (farm-build --push),
// and the manifest list is assembled in the registry from the pushed
// digests (farm-manifest), without pulling anything to this machine.
package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/containers/common/pkg/retry"
	"github.com/containers/image/v5/docker"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/manifest"
	"github.com/containers/image/v5/types"
	"github.com/containers/podman/v4/pkg/auth"
	"github.com/containers/podman/v4/pkg/domain/entities"
	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/podman"
	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options are the user's registry settings, as podman push takes them.
type Options struct {
	TLSVerify bool
	// Authfile is the credentials file (REGISTRY_AUTH_FILE); empty means
	// containers/image's default lookup.
	Authfile string
}

func (o Options) systemContext() *types.SystemContext {
	sys := &types.SystemContext{AuthFilePath: o.Authfile}
	if !o.TLSVerify {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	return sys
}

// retryOptions: registries fail transiently (a restart, a 503); a push is
// idempotent (content-addressed), so trying again is safe. No Delay: pkg/retry
// then backs off exponentially, 1 s, 2 s, 4 s.
var retryOptions = &retry.Options{MaxRetry: 3, IsErrorRetryable: retryable}

// A push that the node's podman service ran and the registry side failed
// (unreachable, refused, denied) is marked fault.Deterministic: the node is
// fine, and another node would push to the same registry, so farm-build
// does not fail over.

// retryable is containers/common's heuristic for errors of our own
// requests (typed: net, HTTP status, registry error codes). A node reports
// its push's failure only as text (an API error document or a stream
// message, whatever the registry said): for those, and only those, the
// text is all there is to go by.
func retryable(err error) bool {
	if !fault.Is(err, fault.Deterministic) {
		return retry.IsErrorRetryable(err)
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "i/o timeout",
		"TLS handshake timeout", "unexpected EOF", "429 Too Many Requests", "502 Bad Gateway",
		"503 Service Unavailable", "504 Gateway Timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// PushFromNode makes the node push image id
// to dest (a tagged reference) and returns the pushed manifest's digest. The
// user's credentials travel to the node in the X-Registry-Auth header, as
// podman --remote push sends them.
func PushFromNode(ctx context.Context, node *podman.Client, id string, dest reference.NamedTagged, opts Options) (digest.Digest, error) {
	header, err := auth.MakeXRegistryAuthHeader(opts.systemContext(), "", "")
	if err != nil {
		return "", fmt.Errorf("reading registry credentials: %w", err)
	}
	params := url.Values{}
	params.Set("destination", dest.String())
	params.Set("tlsVerify", strconv.FormatBool(opts.TLSVerify))
	var pushed digest.Digest
	err = retry.IfNecessary(ctx, func() error {
		resp, err := node.Do(ctx, nil, http.MethodPost, "/images/%s/push", params, header, id)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if !resp.IsSuccess() {
			// The node answered: the push itself failed (podman reports a
			// registry it cannot reach this way too).
			if err := resp.Process(nil); err != nil {
				return fault.AsDeterministic(err)
			}
		}
		dec := json.NewDecoder(bufio.NewReader(resp.Body))
		for {
			var msg entities.ImagePushStream
			if err := dec.Decode(&msg); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return fmt.Errorf("reading the push stream: %w", err)
			}
			if msg.Error != "" {
				return fault.AsDeterministic(errors.New(msg.Error))
			}
			if msg.ManifestDigest != "" {
				pushed = digest.Digest(msg.ManifestDigest)
			}
		}
	}, retryOptions)
	if err != nil {
		return "", fmt.Errorf("pushing to %s: %w", dest, err)
	}
	if pushed == "" {
		// Older services (podman < 4.4) do not report the digest: ask the
		// registry what the tag now names.
		_, d, err := fetchManifest(ctx, dest, opts)
		if err != nil {
			return "", err
		}
		pushed = d
	}
	return pushed, nil
}

func fetchManifest(ctx context.Context, ref reference.Named, opts Options) ([]byte, digest.Digest, error) {
	iref, err := docker.NewReference(ref)
	if err != nil {
		return nil, "", err
	}
	var raw []byte
	err = retry.IfNecessary(ctx, func() error {
		src, err := iref.NewImageSource(ctx, opts.systemContext())
		if err != nil {
			return err
		}
		defer src.Close()
		raw, _, err = src.GetManifest(ctx, nil)
		return err
	}, retryOptions)
	if err != nil {
		return nil, "", fmt.Errorf("reading the manifest of %s: %w", ref, err)
	}
	d, err := manifest.Digest(raw)
	return raw, d, err
}

// Instance is one image of a list to assemble in the registry.
type Instance struct {
	Platform platform.Platform
	Digest   digest.Digest
}

// PutList assembles a manifest list at dest from images already in dest's
// repository (by digest) and returns the list's digest. format is "oci" (an
// image index) or "v2s2" (a Docker manifest list). Nothing is pulled: only
// the small per-image manifests are read, for their size and media type. The
// list is written with one PUT, so the tag names either the old list or the
// whole new one.
func PutList(ctx context.Context, dest reference.NamedTagged, instances []Instance, format string, opts Options) (digest.Digest, error) {
	repo := reference.TrimNamed(dest)
	var ociDescs []imgspecv1.Descriptor
	var v2Descs []manifest.Schema2ManifestDescriptor
	for _, inst := range instances {
		byDigest, err := reference.WithDigest(repo, inst.Digest)
		if err != nil {
			return "", err
		}
		raw, _, err := fetchManifest(ctx, byDigest, opts)
		if err != nil {
			return "", fmt.Errorf("%s: %w", inst.Platform, err)
		}
		mediaType := manifest.GuessMIMEType(raw)
		p := inst.Platform
		ociDescs = append(ociDescs, imgspecv1.Descriptor{
			MediaType: mediaType, Digest: inst.Digest, Size: int64(len(raw)),
			Platform: &imgspecv1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant},
		})
		v2Descs = append(v2Descs, manifest.Schema2ManifestDescriptor{
			Schema2Descriptor: manifest.Schema2Descriptor{MediaType: mediaType, Digest: inst.Digest, Size: int64(len(raw))},
			Platform:          manifest.Schema2PlatformSpec{OS: p.OS, Architecture: p.Arch, Variant: p.Variant},
		})
	}
	var list []byte
	var err error
	switch format {
	case "v2s2":
		list, err = manifest.Schema2ListFromComponents(v2Descs).Serialize()
	default:
		list, err = manifest.OCI1IndexFromComponents(ociDescs, nil).Serialize()
	}
	if err != nil {
		return "", err
	}
	iref, err := docker.NewReference(dest)
	if err != nil {
		return "", err
	}
	err = retry.IfNecessary(ctx, func() error {
		d, err := iref.NewImageDestination(ctx, opts.systemContext())
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.PutManifest(ctx, list, nil); err != nil {
			return err
		}
		return d.Commit(ctx, nil)
	}, retryOptions)
	if err != nil {
		return "", fmt.Errorf("writing the manifest list %s: %w", dest, err)
	}
	return manifest.Digest(list)
}
