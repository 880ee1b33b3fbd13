//go:build !unix

package pipeline

import (
	"os"
	"os/exec"
)

// group signals each stage on its own where there are no process groups.
type group struct{}

func newGroup() *group                 { return &group{} }
func (g *group) join(*exec.Cmd)        {}
func (g *group) started(*exec.Cmd)     {}
func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }

func (g *group) signal(cmds []*exec.Cmd, sig os.Signal) {
	for _, c := range cmds {
		c.Process.Signal(sig)
	}
}
