package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"

	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/proxy"
	"github.com/farm-build/farm/lib/record"
	"golang.org/x/crypto/ssh"
)

// Session is an open connection to one node's podman service. For ssh://
// nodes it holds one SSH connection and serves a private local socket that
// tunnels to the node's podman socket, so pkg/bindings talks to a plain
// unix:// URI while farm keeps control of host keys, auth and timeouts.
// unix:// and tcp:// nodes are used as they are.
type Session struct {
	Target Target

	client       *ssh.Client // nil unless ssh://
	remoteSocket string
	uri          string // what pkg/bindings dials
	dir          string // private directory of the local socket
	tunnel       *proxy.Proxy

	mu     sync.Mutex
	podman *podman.Client // set by the first Connect that succeeds
}

// Open connects to the target, bounded by ctx. The caller must Close it.
func Open(ctx context.Context, t Target, opts SSHOptions) (*Session, error) {
	u, err := url.Parse(t.URI)
	if err != nil {
		// url's error quotes the whole URI, password included: say less.
		return nil, fmt.Errorf("connection %s: the URI is not a valid URL (want ssh://user@host[:port]/path/to/podman.sock)", t.Name)
	}
	s := &Session{Target: t}
	switch u.Scheme {
	case "unix":
		s.uri = t.URI
		return s, nil
	case "tcp":
		s.uri = t.URI
		return s, nil
	case "ssh":
		if u.Host == "" || u.Opaque != "" {
			return nil, fmt.Errorf("connection %s: the URI %q has no host (want ssh://user@host[:port]/path/to/podman.sock)", t.Name, record.RedactURI(t.URI))
		}
	default:
		return nil, fmt.Errorf("connection URI %q: unsupported scheme %q (want ssh://, unix:// or tcp://)", record.RedactURI(t.URI), u.Scheme)
	}

	identity := t.Identity
	if identity == "" {
		identity = os.Getenv("CONTAINER_SSHKEY")
	}
	userName := u.User.Username()
	if userName == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("no user in %q and the current user is unknown: %w; put the user in the URI: ssh://USER@host/path/to/podman.sock", record.RedactURI(t.URI), err)
		}
		userName = cur.Username
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "22")
	}
	s.remoteSocket = u.Path
	if s.remoteSocket == "" {
		return nil, fmt.Errorf("connection URI %q has no socket path (ssh://user@host[:port]/path/to/podman.sock)", record.RedactURI(t.URI))
	}
	s.client, err = dialSSH(ctx, userName, hostport, identity, opts)
	if err != nil {
		return nil, err
	}
	// Reach the socket once now, so a node whose podman service is not
	// running fails here with advice instead of as an EOF in some request.
	probe, err := s.client.Dial("unix", s.remoteSocket)
	if err != nil {
		s.client.Close()
		return nil, fmt.Errorf("podman socket %s on %s: %w; is the podman service running there? try: ssh %s systemctl --user enable --now podman.socket (or systemctl enable --now podman.socket as root)",
			s.remoteSocket, hostport, err, sshHintUser(userName, hostport))
	}
	probe.Close()
	if err := s.serveTunnel(); err != nil {
		s.client.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) serveTunnel() error {
	sweepDeadTunnels(os.TempDir())
	dir, err := os.MkdirTemp("", tunnelPattern())
	if err != nil {
		return fmt.Errorf("creating the local tunnel socket: %w; is $TMPDIR (%s) writable?", err, os.TempDir())
	}
	sock := filepath.Join(dir, "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("creating the local tunnel socket: %w; is $TMPDIR (%s) writable?", err, os.TempDir())
	}
	s.dir, s.uri = dir, "unix://"+sock
	s.tunnel = proxy.Serve(l, func() (net.Conn, error) { return s.client.Dial("unix", s.remoteSocket) })
	return nil
}

// URI is the address pkg/bindings should dial for this node.
func (s *Session) URI() string { return s.uri }

// Connect checks that the node's podman service answers and returns a
// client for it. The first success is kept for later calls; a failure is
// not, so one caller's cancelled dial never answers for another caller.
func (s *Session) Connect(ctx context.Context) (*podman.Client, error) {
	s.mu.Lock()
	c := s.podman
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := podman.Connect(ctx, s.uri)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("podman service of %s: %w; is the podman service running, and is the connection's path its socket? try: podman --connection %s info", s.Target.Name, err, s.Target.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.podman == nil {
		s.podman = c
	}
	return s.podman, nil
}

// Remote reports whether commands run over SSH (false: on this host).
func (s *Session) Remote() bool { return s.client != nil }

// SSH is the node's SSH client (nil unless ssh://), for port forwards.
func (s *Session) SSH() *ssh.Client { return s.client }

// HasShell reports whether Run can run commands on the node: over SSH, or
// on this host for unix:// nodes; not over tcp://.
func (s *Session) HasShell() bool { return s.client != nil || strings.HasPrefix(s.uri, "unix:") }

// ErrNoShell means the node has no shell farm can reach (tcp:// nodes).
var ErrNoShell = errors.New("no shell on this node (tcp:// connection)")

// Run runs a POSIX shell script on the node (or on this host for unix://
// nodes) and returns its stdout. ctx cancels it.
func (s *Session) Run(ctx context.Context, script string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	if s.client == nil {
		if !s.HasShell() {
			return nil, ErrNoShell
		}
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.Bytes(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return stdout.Bytes(), nil
	}
	sess, err := s.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh session: %w", err)
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = &stdout, &stderr
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	if err := sess.Run(script); err != nil {
		if ctx.Err() != nil {
			return stdout.Bytes(), context.Cause(ctx)
		}
		return stdout.Bytes(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Close ends the tunnel and the SSH connection.
func (s *Session) Close() error {
	var err error
	if s.client != nil {
		err = s.client.Close()
	}
	if s.tunnel != nil {
		s.tunnel.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
	return err
}
