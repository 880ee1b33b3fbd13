package transfer

import (
	"os"
	"os/exec"
	"syscall"
)

func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: the terminal's Ctrl-C reaches farm-build
		// alone, which cancels the transfers and then stops the registry.
		Setpgid: true,
		// If farm-build dies without stopping it (a second Ctrl-C, kill
		// -9), the registry must not outlive it.
		Pdeathsig: syscall.SIGTERM,
	}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
