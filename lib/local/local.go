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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/record"
)

// Service is a local podman service; Close stops it if this run started it.
type Service struct {
	// URI is the service's address as the user named it (ssh://, unix://,
	// tcp://); Identity its SSH key, if any.
	URI      string
	Identity string
	sess     *conn.Session // farm's own connection to it (lib/conn)
	cmd      *exec.Cmd
	dir      string
	lock     *os.File // held while the service's directory is in use
	done     chan struct{}
}

// DefaultTimeout bounds finding and connecting to the local store when
// Request.Timeout is zero.
const DefaultTimeout = 10 * time.Second

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
	return OpenRequest(ctx, log, Request{SSH: conn.DefaultSSHOptions()})
}

// OpenRequest is Open with the user's --url / --connection. The local store
// is reached as nodes are (lib/conn): an ssh:// one over farm's own SSH,
// with strict host keys, no prompt and the request's timeout.
func OpenRequest(ctx context.Context, log *slog.Logger, req Request) (*Service, error) {
	choices, err := Choose(req, os.Getenv, func() (*conn.Inventory, error) { return conn.Load(conn.LoadOptions{}) })
	if err != nil {
		return nil, err
	}
	for _, c := range choices {
		s, err := connect(ctx, c, req)
		if err == nil {
			log.Info("local podman service", "uri", record.RedactURI(c.URI), "from", c.Source)
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if c.Explicit {
			return nil, fmt.Errorf("local podman service %s (%s): %w", record.RedactURI(c.URI), c.Source, err)
		}
		log.Debug("local podman service: not here", "uri", c.URI, "error", err)
	}
	s, err := start(ctx, log)
	if err == nil {
		log.Info("local podman service", "uri", s.URI, "from", "private service for this run")
	}
	return s, err
}

// connect opens farm's connection to the service c names and checks that it
// answers, all within req's timeout (absolute: a library call that ignored
// ctx would not stretch it).
func connect(ctx context.Context, c Choice, req Request) (*Service, error) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("no answer within %s; is it running (podman machine start, podman system service)? try: podman --url %s info", timeout, record.RedactURI(c.URI)))
	defer cancel()
	if err := listening(ctx, c.URI); err != nil {
		return nil, err
	}
	type result struct {
		s   *Service
		err error
	}
	done := make(chan result, 1)
	go func() {
		sess, err := conn.Open(ctx, conn.Target{Name: "local store", URI: c.URI, Identity: c.Identity}, req.SSH)
		if err == nil {
			if _, err = podman.Connect(ctx, sess.URI()); err != nil {
				sess.Close()
				err = fmt.Errorf("%w; is the path its podman socket? try: podman --url %s info", err, record.RedactURI(c.URI))
			}
		}
		if err != nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{s: &Service{URI: c.URI, Identity: c.Identity, sess: sess}}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-ctx.Done():
		go func() { // the connection made after all is nobody's
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, context.Cause(ctx)
	}
}

// listening fails at once when uri is a unix socket that nobody listens
// on: the podman bindings retry such a dial for 0.6 s before they say so,
// which every farm-build and farm-manifest run paid on a machine without a
// podman system service before starting its private one.
func listening(ctx context.Context, uri string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "unix" {
		return nil // the bindings say what is wrong with it
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", u.Path)
	if err != nil {
		return fmt.Errorf("no podman service listens on %s: %w", u.Path, err)
	}
	return c.Close()
}

func start(ctx context.Context, log *slog.Logger) (*Service, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, errors.New("no local podman service is listening and podman is not installed; install podman or set CONTAINER_HOST")
	}
	removeDeadDirs(os.TempDir(), log)
	dir, lock, err := makeDir()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command(bin, "system", "service", "--time=0", "unix://"+sock)
	if err := detach(cmd); err != nil {
		dropDir(dir, lock)
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "service.log"))
	if err != nil {
		dropDir(dir, lock)
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		dropDir(dir, lock)
		return nil, fmt.Errorf("starting a local podman service: %w; is podman working here? try: podman info, or set CONTAINER_HOST to a running service", err)
	}
	s := &Service{URI: "unix://" + sock, cmd: cmd, dir: dir, lock: lock, done: make(chan struct{})}
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
		case <-time.After(20 * time.Millisecond): // it answers after about 0.2 s
		}
		if sess, err := conn.Open(ctx, conn.Target{Name: "local store", URI: s.URI}, conn.SSHOptions{}); err == nil {
			if _, err := podman.Connect(ctx, s.URI); err == nil {
				s.sess = sess
				return s, nil
			}
			sess.Close()
		}
	}
	s.Close()
	return nil, errors.New("local podman service did not answer within 30s; try: podman info (is storage locked by another podman?), or set CONTAINER_HOST to a running service")
}

// Connect returns a client of the service, through farm's connection.
func (s *Service) Connect(ctx context.Context) (*podman.Client, error) {
	if s.sess == nil {
		return nil, fmt.Errorf("local podman service %s: closed", record.RedactURI(s.URI))
	}
	c, err := podman.Connect(ctx, s.sess.URI())
	if err != nil {
		return nil, fmt.Errorf("local podman service %s: %w; is it still running? try: podman --url %s info", record.RedactURI(s.URI), err, record.RedactURI(s.URI))
	}
	return c, nil
}

// Session is farm's connection to the service: for an ssh:// store, the
// SSH connection that carries forwards to it (Session.SSH).
func (s *Service) Session() *conn.Session { return s.sess }

// Close ends the connection, and stops the service if this run started it.
func (s *Service) Close() {
	if s.sess != nil {
		s.sess.Close()
		s.sess = nil
	}
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
	dropDir(s.dir, s.lock)
}
