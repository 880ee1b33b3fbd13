//go:build !linux

package local

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
)

// detach refuses: podman runs containers on Linux only; on macOS and
// Windows its service lives in a podman machine, reached through a system
// connection, and `podman system service` does not exist there.
func detach(*exec.Cmd) error {
	return fmt.Errorf("no local podman service found, and on %s farm cannot start one: podman's service runs in a podman machine there; start it (podman machine start) and make it the default connection (podman system connection default NAME), or set CONTAINER_HOST", runtime.GOOS)
}

func terminate(p *os.Process) error { return p.Kill() }
