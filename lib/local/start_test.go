package local

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/farm-build/farm/lib/podmantest"
)

// TestMain lets this test binary play `podman system service` (with
// FARM_TEST_FAKE_PODMAN set): a fake podman service on the socket it is
// given, until SIGTERM. No podman binary is needed.
func TestMain(m *testing.M) {
	if os.Getenv("FARM_TEST_OWNER") != "" {
		ownAService() // never returns
	}
	switch os.Getenv("FARM_TEST_FAKE_PODMAN") {
	case "":
		os.Exit(m.Run())
	case "exit":
		io.WriteString(os.Stderr, "Error: cannot open storage: permission denied\n")
		os.Exit(125)
	}
	args := os.Args[1:]
	if len(args) != 4 || args[0] != "system" || args[1] != "service" {
		os.Exit(2)
	}
	s, err := podmantest.Listen(strings.TrimPrefix(args[3], "unix://"))
	if err != nil {
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	s.Close()
	os.Exit(0)
}

// ownAService is a stage that started a private service: it prints the
// service's pid and waits to be killed.
func ownAService() {
	os.Unsetenv("FARM_TEST_OWNER") // the service is the fake podman, not another owner
	s, err := start(context.Background(), quiet)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(s.cmd.Process.Pid, s.dir)
	select {}
}

// fakePodmanOnPath puts a "podman" on PATH that is this test binary.
func fakePodmanOnPath(t *testing.T, mode string) {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "podman")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv("FARM_TEST_FAKE_PODMAN", mode)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestStartAPrivateService(t *testing.T) {
	fakePodmanOnPath(t, "serve")
	s, err := start(context.Background(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.URI() != s.URI {
		t.Errorf("client %s, service %s", c.URI(), s.URI)
	}
	s.Close()
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("the private directory stays: %v", err)
	}
	if _, err := s.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Connect after Close: %v", err)
	}
}

func TestStartFails(t *testing.T) {
	fakePodmanOnPath(t, "exit")
	if _, err := start(context.Background(), quiet); err == nil || !strings.Contains(err.Error(), "exited at start: Error: cannot open storage") {
		t.Errorf("a podman that exits: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := start(context.Background(), quiet); err == nil || !strings.Contains(err.Error(), "podman is not installed") {
		t.Errorf("no podman: %v", err)
	}
	fakePodmanOnPath(t, "serve")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := start(ctx, quiet); err == nil {
		t.Error("a cancelled start succeeded")
	}
}

// CONTAINER_HOST that answers is used as it is: nothing is started.
func TestOpenUsesContainerHost(t *testing.T) {
	fake := podmantest.New(t)
	t.Setenv("CONTAINER_HOST", fake.URI)
	t.Setenv("PATH", t.TempDir())
	s, err := Open(context.Background(), quiet)
	if err != nil || s.URI != fake.URI || s.cmd != nil {
		t.Fatalf("%+v %v", s, err)
	}
	s.Close()
}
