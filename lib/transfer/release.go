package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/storage/pkg/stringid"
)

// Release undoes what one run did to image id in a podman service (api):
// it removes the run's own name ref from the image, and then the image
// itself only when the run brought it there (fresh) and nothing else names
// it any more. Never by force, never by id alone: another run may have
// found the very same image already there ("nothing to transfer") and
// named it, or built the same layers into it on a node; its names keep it.
func Release(api context.Context, id, ref string, fresh bool) error {
	var errs []error
	if ref != "" {
		if err := untag(api, id, ref); err != nil {
			// Not fatal: the name may have moved to another image (a
			// concurrent run of the same tag); that image is not ours.
			errs = append(errs, fmt.Errorf("untagging %s from %s: %w", ref, stringid.TruncateID(id), err))
		}
	}
	if !fresh {
		return errors.Join(errs...)
	}
	inspect, err := images.GetImage(api, id, nil)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("inspecting %s: %w", stringid.TruncateID(id), err))...)
	}
	if len(inspect.RepoTags) > 0 {
		return errors.Join(errs...) // someone else names it: theirs now
	}
	if _, rmErrs := images.Remove(api, []string{id}, nil); len(rmErrs) > 0 {
		errs = append(errs, fmt.Errorf("removing %s: %w", stringid.TruncateID(id), errors.Join(rmErrs...)))
	}
	return errors.Join(errs...)
}

func untag(api context.Context, id, ref string) error {
	tagged, err := nameTag(ref)
	if err != nil {
		return err
	}
	return images.Untag(api, id, tagged.Tag(), tagged.Name(), nil)
}

// hasName reports whether image id is named ref already.
func hasName(api context.Context, id, ref string) (bool, error) {
	want, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false, err
	}
	inspect, err := images.GetImage(api, id, nil)
	if err != nil {
		return false, err
	}
	for _, t := range inspect.RepoTags {
		if n, err := reference.ParseNormalizedNamed(t); err == nil && n.String() == reference.TagNameOnly(want).String() {
			return true, nil
		}
	}
	return false, nil
}
