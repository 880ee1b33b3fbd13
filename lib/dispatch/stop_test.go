//go:build linux

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
// buildah-oci-runtime (comm "exe") whose working directory is a bundle
// with hosts and pid files, the pid being the step's init: its child.
type step struct {
	runtime *exec.Cmd
	bundle  string
}

// startStep starts a step of the job; its init starts (and the pid file
// appears) after delay, as when runc create is slow.
func startStep(t *testing.T, dir, jobID, delay string) step {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	// buildah re-executes /proc/self/exe with argv[0] buildah-oci-runtime:
	// its comm is "exe". A link named exe, run with that argv[0], is alike.
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	exe := filepath.Join(bin, "exe")
	if _, err := os.Lstat(exe); err != nil {
		if err := os.Symlink(sh, exe); err != nil {
			t.Fatal(err)
		}
	}
	bundle := filepath.Join(dir, jobID)
	os.MkdirAll(bundle, 0o755)
	hosts := "127.0.0.1\tlocalhost\n127.0.0.1\t" + jobID + ".invalid\n"
	os.WriteFile(filepath.Join(bundle, "hosts"), []byte(hosts), 0o644)
	runtime := &exec.Cmd{Path: exe, Dir: bundle,
		Args: []string{"buildah-oci-runtime", "-c", "sleep " + delay + "; sleep 60 & echo $! > pid.tmp; mv pid.tmp pid; wait"}}
	if err := runtime.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pid, err := os.ReadFile(filepath.Join(bundle, "pid")); err == nil {
			if n, err := strconv.Atoi(string(pid[:len(pid)-1])); err == nil {
				if p, err := os.FindProcess(n); err == nil {
					p.Kill()
				}
			}
		}
		runtime.Process.Kill()
		runtime.Wait()
	})
	return step{runtime, bundle}
}

// init waits for the step's pid file and returns the init's pid.
func (s step) init(t *testing.T) int {
	t.Helper()
	for range 100 {
		if data, err := os.ReadFile(filepath.Join(s.bundle, "pid")); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the step's init never started")
	return 0
}

func alive(pid int) bool {
	if p, err := os.FindProcess(pid); err != nil || p.Signal(syscall.Signal(0)) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

// TestStopScriptKillsMarkedSteps runs the script for real: it kills the
// init of the job's step, found through the marked bundle, also when the
// step is still in the making as the script starts (no pid file yet), and
// leaves another job's step alone.
func TestStopScriptKillsMarkedSteps(t *testing.T) {
	for _, delay := range []string{"0", "1.5"} {
		t.Run("init after "+delay+"s", func(t *testing.T) {
			dir := t.TempDir()
			mine := startStep(t, dir, "farm-1111", delay)
			other := startStep(t, dir, "farm-2222", "0")
			otherInit := other.init(t)
			out, err := exec.Command("/bin/sh", "-c", stopScript("farm-1111", false, true)).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			init := mine.init(t)
			if !strings.Contains(string(out), "killed "+strconv.Itoa(init)) {
				t.Errorf("output %q does not name the step's init %d", out, init)
			}
			if alive(init) {
				t.Error("the job's step is still running")
			}
			if !alive(otherInit) || !alive(other.runtime.Process.Pid) {
				t.Errorf("another job's step must still run")
			}
		})
	}
}

// TestStopScriptSparesReusedPids: a pid file naming a process that is not
// the runtime's child (the step ended, its pid went to another process)
// kills nothing.
func TestStopScriptSparesReusedPids(t *testing.T) {
	dir := t.TempDir()
	mine := startStep(t, dir, "farm-3333", "0")
	mine.init(t)
	stranger := exec.Command("sleep", "60")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Process.Kill(); stranger.Wait() })
	os.WriteFile(filepath.Join(mine.bundle, "pid"), []byte(strconv.Itoa(stranger.Process.Pid)+"\n"), 0o644)
	out, err := exec.Command("/bin/sh", "-c", stopScript("farm-3333", false, true)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if strings.Contains(string(out), "killed") || !alive(stranger.Process.Pid) {
		t.Errorf("killed a process that is not the step's: %q", out)
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
