package conn

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/podmantest"
	"golang.org/x/crypto/ssh"
)

func TestAuthNeverPrompts(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := authMethods("", ""); err == nil || !strings.Contains(err.Error(), "no SSH identity") {
		t.Fatalf("no identity and no agent must be an error, got %v", err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "enc")
	os.WriteFile(enc, pem.EncodeToMemory(block), 0o600)
	_, _, err = authMethods(enc, "")
	if err == nil || !strings.Contains(err.Error(), "ssh-add") {
		t.Fatalf("an encrypted key without agent must say how to fix it, got %v", err)
	}
	if strings.Contains(fmt.Sprint(err), "secret") {
		t.Fatal("error leaks the passphrase")
	}
	if m, closeFn, err := authMethods(podmantest.SSHKey(t), ""); err != nil || len(m) != 1 {
		t.Fatalf("plain key: %v %v", m, err)
	} else {
		closeFn()
	}
}

func TestHostKeyErrors(t *testing.T) {
	unknown := &HostKeyError{Host: "[127.0.0.1]:2221", KnownHosts: []string{"/root/.ssh/known_hosts"}}
	if !strings.Contains(unknown.Error(), "not in known_hosts") || !strings.Contains(unknown.Error(), "-p 2221 127.0.0.1") ||
		!strings.Contains(unknown.Error(), "`ssh-keyscan -p 2221 127.0.0.1 >> /root/.ssh/known_hosts`") {
		t.Errorf("unknown: %s", unknown)
	}
	changed := &HostKeyError{Host: "[127.0.0.1]:2221", KnownHosts: []string{"/root/.ssh/known_hosts"}, Changed: true}
	if !strings.Contains(changed.Error(), "CHANGED") || !strings.Contains(changed.Error(), "ssh-keygen -R") {
		t.Errorf("changed: %s", changed)
	}
}

// A server that accepts TCP and never speaks must not hang the dial past ctx.
func TestDialBoundedByContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, nil, 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = dialSSH(ctx, "root", l.Addr().String(), podmantest.SSHKey(t), SSHOptions{KnownHosts: []string{kh}})
	if err == nil {
		t.Fatal("want an error")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("dial took %s", time.Since(start))
	}
}
