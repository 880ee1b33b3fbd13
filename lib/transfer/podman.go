package transfer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/podman/v4/pkg/domain/entities"
	"github.com/farm-build/farm/lib/podman"
)

// noCredentials is the X-Registry-Auth header of every request that touches
// the transfer registry: an empty map of credentials. pkg/bindings' Push
// and Pull would send every credential of the user's auth files (and
// credential helpers) to the podman service; with no header at all, the
// service would read its own auth files. An empty map makes the service use
// an empty auth file of its own: no credential of any real registry reaches
// the push or the pull, whatever the environment holds.
var noCredentials = base64.URLEncoding.EncodeToString([]byte("{}"))

func noAuthHeader() http.Header {
	return http.Header{"X-Registry-Auth": []string{noCredentials}}
}

// push asks a podman service (api: a pkg/bindings context) to push image id
// to dest over plain HTTP, compressing new layers with compression (gzip or
// zstd), and returns the manifest digest when the service reports one
// (podman 4.3 does not; the registry is asked then).
func push(ctx context.Context, c *podman.Client, id, dest, compression string) (string, error) {
	params := url.Values{}
	params.Set("destination", dest)
	params.Set("tlsVerify", "false")
	params.Set("compressionFormat", compression)
	// A layer the registry has in another compression is reused, not
	// compressed and sent again (podman 4.9 and 5 force the format when
	// compressionFormat is given, unless told not to; 4.3 never forces).
	params.Set("forceCompressionFormat", "false")
	// quiet=false: podman >= 4.2 then streams progress and, above all, the
	// error of a push that fails part way.
	params.Set("quiet", "false")
	resp, err := c.Do(ctx, nil, http.MethodPost, "/images/%s/push", params, noAuthHeader(), id)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if !resp.IsSuccess() {
		return "", resp.Process(nil)
	}
	return decodePushStream(resp.Body)
}

func decodePushStream(r io.Reader) (string, error) {
	var digest string
	dec := json.NewDecoder(r)
	for {
		var m entities.ImagePushStream
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return digest, nil
			}
			return "", fmt.Errorf("reading the push progress: %w", err)
		}
		if m.Error != "" {
			return "", errors.New(strings.TrimSpace(m.Error))
		}
		if m.ManifestDigest != "" {
			digest = m.ManifestDigest
		}
	}
}

// pull asks a podman service to pull ref over plain HTTP, always (the ref
// is by digest, so "always" costs only a manifest read; layers the storage
// has are not fetched), and returns the ids of what it pulled.
func pull(ctx context.Context, c *podman.Client, ref, os, arch, variant string) ([]string, error) {
	params := url.Values{}
	params.Set("reference", ref)
	params.Set("tlsVerify", "false")
	params.Set("policy", "always")
	params.Set("quiet", "true")
	// The image may be for another platform than this machine's: say it
	// is wanted, so podman does not warn that it does not match.
	if os != "" {
		params.Set("os", os)
	}
	if arch != "" {
		params.Set("arch", arch)
	}
	if variant != "" {
		params.Set("variant", variant)
	}
	resp, err := c.Do(ctx, nil, http.MethodPost, "/images/pull", params, noAuthHeader())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if !resp.IsSuccess() {
		return nil, resp.Process(nil)
	}
	return decodePullStream(resp.Body)
}

func decodePullStream(r io.Reader) ([]string, error) {
	var ids []string
	var errs []string
	dec := json.NewDecoder(r)
	for {
		var m entities.ImagePullReport
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("reading the pull progress: %w", err)
		}
		if m.Error != "" {
			errs = append(errs, strings.TrimSpace(m.Error))
		}
		if len(m.Images) > 0 {
			ids = m.Images
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	if len(ids) == 0 {
		return nil, errors.New("the pull reported no image")
	}
	return ids, nil
}

// Tag names image id ref (NAME:TAG) in the service's storage, taking the
// name off any image that had it.
func Tag(api context.Context, id, ref string) error {
	tagged, err := nameTag(ref)
	if err != nil {
		return err
	}
	return images.Tag(api, id, tagged.Tag(), tagged.Name(), nil)
}

// nameTag splits ref the way the tag and untag endpoints want it: the
// normalised name and the tag, "latest" when ref has none.
func nameTag(ref string) (reference.NamedTagged, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, err
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return nil, fmt.Errorf("%q is not NAME:TAG", ref)
	}
	return tagged, nil
}

// dropName removes name, a NAME@DIGEST the pull gave image id, from it,
// and never the image itself. A remove by name would remove the image when
// that is its last name, and it can be: a concurrent run of the same tag
// may have moved the per-platform tag to its own image in the meantime.
// The untag endpoint joins repo and tag with ":" (podman 4.3 appends
// ":latest" to a bare NAME@DIGEST), so NAME@sha256 and HEX give back
// exactly NAME@sha256:HEX.
func dropName(api context.Context, id, name string) error {
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return fmt.Errorf("%q is not NAME@DIGEST", name)
	}
	return images.Untag(api, id, name[i+1:], name[:i], nil)
}
