package dispatch

import (
	"fmt"
	"os"

	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/record"
)

// IIDFile is where --iidfile FILE puts a platform's image ID: one build
// makes one image per platform, so each gets FILE-os-arch[-variant], the
// suffix of its tag.
func IIDFile(file string, plat platform.Platform) string {
	suffix := plat.OS + "-" + plat.Arch
	if plat.Variant != "" {
		suffix += "-" + plat.Variant
	}
	return file + "-" + suffix
}

// writeIIDFile writes the image's ID as podman's --iidfile does
// ("sha256:" and the hex ID, no newline), once the image is where it goes.
func (r *Runner) writeIIDFile(img *record.Image) error {
	if r.cfg.IIDFile == "" {
		return nil
	}
	plat, err := platform.Parse(img.Platform)
	if err != nil {
		return err
	}
	path := IIDFile(r.cfg.IIDFile, plat)
	if err := os.WriteFile(path, []byte("sha256:"+img.ID), 0o644); err != nil {
		return fault.AsLocal(fmt.Errorf("writing --iidfile %s: %w", path, err))
	}
	return nil
}
