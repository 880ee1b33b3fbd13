package local

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startOwner starts a stage (this test binary) that starts a private
// service and waits; it returns the stage, the service's pid and its
// directory.
func startOwner(t *testing.T) (*exec.Cmd, int, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	owner := exec.Command(self)
	owner.Env = append(os.Environ(), "FARM_TEST_OWNER=1")
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Process.Kill(); owner.Wait() })
	line, _, err := bufio.NewReader(out).ReadLine()
	pidS, dir, _ := strings.Cut(string(line), " ")
	pid, convErr := strconv.Atoi(pidS)
	if err != nil || convErr != nil {
		t.Fatalf("the stage did not start its service: %q %v", line, err)
	}
	return owner, pid, dir
}

// killOwner SIGKILLs the stage and waits for its service to end.
func killOwner(t *testing.T, owner *exec.Cmd, pid int) {
	t.Helper()
	owner.Process.Kill()
	owner.Wait()
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the private service (pid %d) outlived its SIGKILLed stage", pid)
		}
	}
}

// A stage killed with SIGKILL cannot stop its private service; the kernel
// does (Pdeathsig), or the service would hold local storage for nobody.
func TestPrivateServiceDiesWithAKilledStage(t *testing.T) {
	fakePodmanOnPath(t, "serve")
	owner, pid, _ := startOwner(t)
	killOwner(t, owner, pid)
}

// The directory of a SIGKILLed stage's private service (its socket, its
// log) is removed by the next start; a live stage's stays, and so does a
// directory farm cannot prove dead (an older farm's: no lock file).
func TestDeadPrivateServiceDirRemovedByTheNextStart(t *testing.T) {
	fakePodmanOnPath(t, "serve")
	t.Setenv("TMPDIR", t.TempDir())
	old := filepath.Join(os.TempDir(), "farm-local-1")
	os.Mkdir(old, 0o700)
	os.WriteFile(filepath.Join(old, "service.log"), nil, 0o600)
	_, _, live := startOwner(t)
	owner, pid, dead := startOwner(t)
	killOwner(t, owner, pid)
	if _, err := os.Stat(dead); err != nil {
		t.Fatalf("the test needs the dead stage's directory left: %v", err)
	}
	s, err := start(context.Background(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead stage's directory %s stays: %v", dead, err)
	}
	for _, dir := range []string{live, old, s.dir} {
		if _, err := os.Stat(filepath.Join(dir, "service.log")); err != nil {
			t.Errorf("%s went: %v", dir, err)
		}
	}
}
