package dispatch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/record"
)

func TestStopScriptShapes(t *testing.T) {
	tests := []struct {
		name         string
		cgroup, kill bool
		has, hasNot  []string
	}{
		{"rootful kill", true, true, []string{"id=farm-abc", "cgroup.kill", "buildah-oci-run", "kill -9", "rmdir"}, nil},
		{"rootful tidy", true, false, []string{"rmdir"}, []string{"kill -9", "buildah-oci-run"}},
		{"rootless kill", false, true, []string{"buildah-oci-run", "kill -9"}, []string{"/sys/fs/cgroup", "rmdir"}},
		{"rootless tidy", false, false, []string{"exit 0"}, []string{"kill", "/sys/fs/cgroup"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stopScript("farm-abc", tc.cgroup, tc.kill)
			for _, w := range tc.has {
				if !strings.Contains(s, w) {
					t.Errorf("lacks %q:\n%s", w, s)
				}
			}
			for _, w := range tc.hasNot {
				if strings.Contains(s, w) {
					t.Errorf("has %q:\n%s", w, s)
				}
			}
		})
	}
}

// step is a stand-in for a RUN step as buildah runs it: a process run as
// buildah-oci-runtime (comm "exe") whose working directory is a bundle with hosts and
// pid files, the pid being the step's init (here another process).
type step struct {
	runtime, init *exec.Cmd
}

func startStep(t *testing.T, dir, jobID string) step {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	// buildah re-executes /proc/self/exe with argv[0] buildah-oci-runtime:
	// its comm is "exe". A link named exe, run with that argv[0], is alike.
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	exe := filepath.Join(bin, "exe")
	if _, err := os.Lstat(exe); err != nil {
		if err := os.Symlink(sleep, exe); err != nil {
			t.Fatal(err)
		}
	}
	bundle := filepath.Join(dir, jobID)
	os.MkdirAll(bundle, 0o755)
	init := exec.Command(sleep, "60")
	runtime := &exec.Cmd{Path: exe, Args: []string{"buildah-oci-runtime", "60"}, Dir: bundle}
	for _, c := range []*exec.Cmd{init, runtime} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		c := c
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	hosts := "127.0.0.1\tlocalhost\n127.0.0.1\t" + jobID + ".invalid\n"
	os.WriteFile(filepath.Join(bundle, "hosts"), []byte(hosts), 0o644)
	os.WriteFile(filepath.Join(bundle, "pid"), []byte(strconv.Itoa(init.Process.Pid)), 0o644)
	return step{runtime, init}
}

func exited(c *exec.Cmd, timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// TestStopScriptKillsMarkedSteps runs the script for real: it kills the
// init of the job's step, found through the marked bundle, and leaves
// another job's step alone.
func TestStopScriptKillsMarkedSteps(t *testing.T) {
	dir := t.TempDir()
	mine := startStep(t, dir, "farm-1111")
	other := startStep(t, dir, "farm-2222")
	out, err := exec.Command("/bin/sh", "-c", stopScript("farm-1111", false, true)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "killed "+strconv.Itoa(mine.init.Process.Pid)) {
		t.Errorf("output %q does not name the step's init %d", out, mine.init.Process.Pid)
	}
	if !exited(mine.init, 2*time.Second) {
		t.Error("the job's step is still running")
	}
	for _, c := range []*exec.Cmd{other.init, other.runtime, mine.runtime} {
		if err := c.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("pid %d was not the job's step and must still run: %v", c.Process.Pid, err)
		}
	}
}

// On a node without a shell (tcp://) a build cannot be stopped: stopJob
// says so for a kill, and says nothing when there is nothing to stop.
func TestStopJobWithoutShell(t *testing.T) {
	s, err := conn.Open(context.Background(), conn.Target{Name: "tcp-node", URI: "tcp://127.0.0.1:1"}, conn.SSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kind := node.Kind{Stop: record.StopNone}
	_, err = stopJob(context.Background(), s, "farm-1", kind, true)
	var cannot *ErrCannotStop
	if !errors.As(err, &cannot) || !strings.Contains(err.Error(), "tcp-node") || !strings.Contains(err.Error(), "may still run") {
		t.Errorf("kill on a node without a shell: %v", err)
	}
	if _, err := stopJob(context.Background(), s, "farm-1", kind, false); err != nil {
		t.Errorf("tidy on a node without a shell: %v", err)
	}
}
