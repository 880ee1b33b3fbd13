package local

import (
	"os"
	"os/exec"
	"syscall"
)

// detach puts the private service in its own process group: the user's
// Ctrl-C reaches farm, which then stops the service after cleaning up
// through it. Pdeathsig stops it when the stage dies without a word
// (SIGKILL, a crash): nobody else would, and it would hold local storage.
func detach(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	return nil
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
