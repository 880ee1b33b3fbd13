package transfer

import (
	"os"
	"os/exec"
)

// detach does nothing on Windows: a console Ctrl-C goes to the whole console
// and there is no parent-death signal.
func detach(*exec.Cmd) {}

// terminate kills: Windows has no SIGTERM to deliver.
func terminate(p *os.Process) error { return p.Kill() }
