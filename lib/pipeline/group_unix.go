//go:build unix

package pipeline

import (
	"os"
	"os/exec"
	"syscall"
)

// group puts the stages in one process group of their own, so that Ctrl-C
// on the terminal reaches farm alone and each stage gets exactly one signal
// from farm (a second one would make a stage skip its clean-up).
type group struct{ pgid int }

func newGroup() *group { return &group{} }

func (g *group) join(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: g.pgid}
}

func (g *group) started(cmd *exec.Cmd) {
	if g.pgid == 0 {
		g.pgid = cmd.Process.Pid
	}
}

func (g *group) signal(_ []*exec.Cmd, sig os.Signal) {
	if g.pgid != 0 {
		syscall.Kill(-g.pgid, sig.(syscall.Signal))
	}
}

func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
