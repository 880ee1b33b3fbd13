package local

import (
	"context"
	"crypto/ed25519"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/podmantest"
	"golang.org/x/crypto/ssh"
)

// sshServer accepts SSH handshakes with a host key of its own (and any
// client key) and then does nothing: enough to see what farm does with the
// host key before anything else.
func sshServer(t *testing.T) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				if sc, chans, reqs, err := ssh.NewServerConn(c, cfg); err == nil {
					go ssh.DiscardRequests(reqs)
					for ch := range chans {
						ch.Reject(ssh.Prohibited, "no")
					}
					sc.Close()
				}
			}()
		}
	}()
	return l.Addr().String(), signer.PublicKey()
}

// The local store over SSH is reached as a node is (lib/conn), never by
// pkg/bindings' own SSH: an unknown or changed host key is refused with the
// ssh-keyscan / ssh-keygen -R hint and known_hosts is left as it was; a
// store that accepts TCP and never speaks fails within the timeout; a
// missing identity says so. Never a private service instead.
func TestOpenSSHStoreLikeANode(t *testing.T) {
	addr, _ := sshServer(t)
	blackhole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	go func() {
		for {
			c, err := blackhole.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	_, otherKey := sshServer(t)
	key := podmantest.SSHKey(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty_known_hosts")
	os.WriteFile(empty, nil, 0o600)
	changed := filepath.Join(dir, "changed_known_hosts")
	host, port, _ := net.SplitHostPort(addr)
	os.WriteFile(changed, []byte("["+host+"]:"+port+" "+string(ssh.MarshalAuthorizedKey(otherKey))), 0o600)
	t.Setenv("PATH", t.TempDir()) // no podman: nothing may be started instead
	for _, tc := range []struct {
		name, uri, identity, knownHosts string
		want                            []string
		within                          time.Duration
	}{
		{name: "unknown host key", uri: "ssh://root@" + addr + "/run/podman/podman.sock", identity: key, knownHosts: empty,
			want: []string{"CONTAINER_HOST", "is not in known_hosts", "refusing unknown hosts", "ssh-keyscan"}},
		{name: "changed host key", uri: "ssh://root@" + addr + "/run/podman/podman.sock", identity: key, knownHosts: changed,
			want: []string{"has CHANGED", "ssh-keygen -R"}},
		{name: "no identity", uri: "ssh://root@" + addr + "/run/podman/podman.sock", knownHosts: empty,
			want: []string{"no SSH identity", "CONTAINER_SSHKEY"}},
		{name: "blackholed", uri: "ssh://root@" + blackhole.Addr().String() + "/run/podman/podman.sock", identity: key, knownHosts: empty,
			want: []string{"no answer within 700ms"}, within: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CONTAINER_HOST", tc.uri)
			t.Setenv("CONTAINER_SSHKEY", tc.identity)
			before, _ := os.ReadFile(tc.knownHosts)
			start := time.Now()
			_, err := OpenRequest(context.Background(), quiet, Request{Timeout: 700 * time.Millisecond,
				SSH: conn.SSHOptions{KnownHosts: []string{tc.knownHosts}}})
			if err == nil {
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.within > 0 && time.Since(start) > tc.within {
				t.Errorf("took %s", time.Since(start))
			}
			if after, _ := os.ReadFile(tc.knownHosts); string(after) != string(before) {
				t.Errorf("known_hosts changed:\n%s", after)
			}
		})
	}
}
