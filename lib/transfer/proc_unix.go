//go:build unix && !linux

package transfer

import (
	"os"
	"os/exec"
	"syscall"
)

// detach gives the registry its own process group, so that the terminal's
// Ctrl-C reaches farm-build alone. There is no parent-death signal outside
// Linux: a farm-build killed with -9 leaves the registry running.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
