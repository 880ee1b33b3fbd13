// Package local finds the podman service of the user's own machine, where
// images are pulled back and manifest lists are made, and starts a private
// one for the run when none is listening.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/podman"
)

// Service is a local podman service; Close stops it if this run started it.
type Service struct {
	URI string
	// Identity is the SSH key of a system connection's service.
	Identity string
	cmd      *exec.Cmd
	dir      string
	done     chan struct{}
}

// Candidates lists the sockets podman itself would use, in order:
// CONTAINER_HOST, then the rootful socket for root or the rootless one.
func Candidates(getenv func(string) string) []string {
	if h := getenv("CONTAINER_HOST"); h != "" {
		return []string{h}
	}
	if os.Geteuid() == 0 {
		return []string{"unix:///run/podman/podman.sock"}
	}
	if x := getenv("XDG_RUNTIME_DIR"); x != "" {
		return []string{"unix://" + filepath.Join(x, "podman", "podman.sock")}
	}
	return []string{fmt.Sprintf("unix:///run/user/%d/podman/podman.sock", os.Geteuid())}
}

// Open returns a running local service, found as Choose says (with no
// flags: the environment and the connections files), or a `podman system
// service` started on a private socket for this run when nothing was named
// and no local socket answers. A named service that does not answer is an
// error, never silently replaced. It says at info level which one it uses.
func Open(ctx context.Context, log *slog.Logger) (*Service, error) {
	return OpenRequest(ctx, log, Request{})
}

// OpenRequest is Open with the user's --url / --connection.
func OpenRequest(ctx context.Context, log *slog.Logger, req Request) (*Service, error) {
	choices, err := Choose(req, os.Getenv, func() (*conn.Inventory, error) { return conn.Load(conn.LoadOptions{}) })
	if err != nil {
		return nil, err
	}
	for _, c := range choices {
		if answers(ctx, c) {
			log.Info("local podman service", "uri", c.URI, "from", c.Source)
			return &Service{URI: c.URI, Identity: c.Identity}, nil
		}
		if c.Explicit {
			return nil, fmt.Errorf("local podman service %s (%s) does not answer; is it running (podman machine start, podman system service)? try: podman --url %s info, or name another service", c.URI, c.Source, c.URI)
		}
	}
	s, err := start(ctx, log)
	if err == nil {
		log.Info("local podman service", "uri", s.URI, "from", "private service for this run")
	}
	return s, err
}

func answers(ctx context.Context, c Choice) bool {
	uri := c.URI
	if path, ok := strings.CutPrefix(uri, "unix://"); ok {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := podman.ConnectIdentity(ctx, uri, c.Identity)
	return err == nil
}

func start(ctx context.Context, log *slog.Logger) (*Service, error) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		return nil, errors.New("no local podman service is listening and podman is not installed; install podman or set CONTAINER_HOST")
	}
	dir, err := os.MkdirTemp("", "farm-local-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command(podman, "system", "service", "--time=0", "unix://"+sock)
	if err := detach(cmd); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "service.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting a local podman service: %w; is podman working here? try: podman info, or set CONTAINER_HOST to a running service", err)
	}
	s := &Service{URI: "unix://" + sock, cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	log.Debug("started a local podman service for this run", "socket", sock, "pid", cmd.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			out, _ := os.ReadFile(filepath.Join(dir, "service.log"))
			s.Close()
			return nil, fmt.Errorf("local podman service exited at start: %s; try: podman system service --time=0 to see why, or set CONTAINER_HOST to a running service", strings.TrimSpace(string(out)))
		case <-ctx.Done():
			s.Close()
			return nil, context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
		if answers(ctx, Choice{URI: s.URI}) {
			return s, nil
		}
	}
	s.Close()
	return nil, errors.New("local podman service did not answer within 30s; try: podman info (is storage locked by another podman?), or set CONTAINER_HOST to a running service")
}

// Connect returns a client of the service.
func (s *Service) Connect(ctx context.Context) (*podman.Client, error) {
	c, err := podman.ConnectIdentity(ctx, s.URI, s.Identity)
	if err != nil {
		return nil, fmt.Errorf("local podman service %s: %w; is it still running? try: podman --url %s info", s.URI, err, s.URI)
	}
	return c, nil
}

// Close stops the service if this run started it.
func (s *Service) Close() {
	if s.cmd == nil {
		return
	}
	terminate(s.cmd.Process)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(s.dir)
}
