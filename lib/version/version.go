// Package version holds what `--version` prints. The Makefile sets Version
// and Commit with -ldflags -X; the bindings version is read from the build
// info, so it can never disagree with go.mod.
package version

import (
	"fmt"
	"runtime/debug"

	// The bindings' own version string: also links the module into every
	// stage, farm-plan included, which uses no other part of it.
	"github.com/containers/podman/v4/version/rawversion"
)

// Set at link time by the Makefile.
var (
	Version = "dev"
	Commit  = "unknown"
)

// Bindings is the version of github.com/containers/podman/v4 compiled in.
func Bindings() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/containers/podman/v4" {
				return dep.Version
			}
		}
	}
	return "v" + rawversion.RawVersion
}

// String is the one-line `--version` output.
func String() string {
	return fmt.Sprintf("%s (commit %s, podman bindings %s)", Version, Commit, Bindings())
}
