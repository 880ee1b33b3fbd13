package local

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A stage killed with SIGKILL cannot stop its private service; the kernel
// does (Pdeathsig), or the service would hold local storage for nobody.
func TestPrivateServiceDiesWithAKilledStage(t *testing.T) {
	fakePodmanOnPath(t, "serve")
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
	line, _, err := bufio.NewReader(out).ReadLine()
	pid, convErr := strconv.Atoi(string(line))
	if err != nil || convErr != nil {
		owner.Process.Kill()
		t.Fatalf("the stage did not start its service: %q %v", line, err)
	}
	owner.Process.Kill()
	owner.Wait()
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the private service (pid %d) outlived its SIGKILLed stage", pid)
		}
	}
}
