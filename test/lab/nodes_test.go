//go:build lab

package lab

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestNodesFarmLab(t *testing.T) {
	r := run(t, nil, "farm-nodes --farm lab")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	nodes := nodesOf(decode(t, r.stdout))
	if len(nodes) != 3 {
		t.Fatalf("want 3 node records for the lab farm, got %d:\n%s", len(nodes), r.stdout)
	}
	for _, name := range []string{"lab-1", "lab-2", "lab-3"} {
		n := nodes[name]
		if n == nil {
			t.Fatalf("no record for %s", name)
		}
		if n.Error != "" {
			t.Errorf("%s: error %q", name, n.Error)
		}
		if len(n.Native) != 1 || n.Native[0] != "linux/amd64" {
			t.Errorf("%s: native %v, want [linux/amd64]", name, n.Native)
		}
		if !contains(n.Emulated, "linux/arm64") {
			t.Errorf("%s: emulated %v lacks linux/arm64", name, n.Emulated)
		}
		if n.CPUs < 1 || n.Memory <= 0 || n.Podman == "" {
			t.Errorf("%s: cpus %d memory %d podman %q", name, n.CPUs, n.Memory, n.Podman)
		}
	}
}

func TestNodesStoppedServiceIsAnErrorRecordWithinTheTimeout(t *testing.T) {
	labDown(t, "node", "lab-2")
	r := run(t, nil, "farm-nodes --farm lab --timeout 5s")
	if r.code != 0 {
		t.Fatalf("exit %d; want 0 while other nodes answer", r.code)
	}
	if r.elapsed > 7*time.Second {
		t.Errorf("took %s with --timeout 5s", r.elapsed)
	}
	nodes := nodesOf(decode(t, r.stdout))
	if nodes["lab-2"] == nil || nodes["lab-2"].Error == "" {
		t.Fatalf("lab-2 should carry an error: %+v", nodes["lab-2"])
	}
	if !strings.Contains(nodes["lab-2"].Error, "podman") {
		t.Errorf("lab-2's error should say the podman service is the problem: %q", nodes["lab-2"].Error)
	}
	for _, name := range []string{"lab-1", "lab-3"} {
		if nodes[name] == nil || nodes[name].Error != "" {
			t.Errorf("%s should be fine: %+v", name, nodes[name])
		}
	}
}

func TestNodesStoppedSSHD(t *testing.T) {
	labDown(t, "sshd", "lab-3")
	r := run(t, nil, "farm-nodes --node lab-1,lab-3 --timeout 5s")
	nodes := nodesOf(decode(t, r.stdout))
	if r.code != 0 || nodes["lab-3"] == nil || !strings.Contains(nodes["lab-3"].Error, "connection refused") {
		t.Fatalf("want lab-3 refused and exit 0, got exit %d: %+v", r.code, nodes["lab-3"])
	}
}

func TestNodesRefuseAChangedHostKey(t *testing.T) {
	port := labVar(t, "FARM_LAB_1_PORT")
	dir := t.TempDir()
	// A key that is not lab-1's, recorded for lab-1's address.
	wrong := filepath.Join(dir, "known_hosts")
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("[127.0.0.1]:%s %s", port, ssh.MarshalAuthorizedKey(sshPub))
	if err := os.WriteFile(wrong, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, []string{"FARM_KNOWN_HOSTS=" + wrong}, "farm-nodes --node lab-1 --timeout 5s")
	n := nodesOf(decode(t, r.stdout))["lab-1"]
	if r.code == 0 || n == nil || !strings.Contains(n.Error, "CHANGED") || !strings.Contains(n.Error, "known_hosts") {
		t.Fatalf("a changed host key must be refused, naming known_hosts; exit %d, record %+v", r.code, n)
	}

	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	r = run(t, []string{"FARM_KNOWN_HOSTS=" + empty}, "farm-nodes --node lab-1 --timeout 5s")
	n = nodesOf(decode(t, r.stdout))["lab-1"]
	if n == nil || !strings.Contains(n.Error, "not in known_hosts") {
		t.Fatalf("an unknown host key must be refused: %+v", n)
	}
	data, _ := os.ReadFile(empty)
	if len(data) != 0 {
		t.Errorf("farm-nodes wrote to known_hosts: %q", data)
	}
}

// A node that accepts TCP but never speaks SSH must not hang farm-nodes.
func TestNodesBlackholedPortTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // never Accept: the handshake gets no answer
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	key := labVar(t, "FARM_LAB_KEY")
	uri1 := labVar(t, "FARM_LAB_1_URI")
	content := fmt.Sprintf(`[engine.service_destinations.hole]
uri = "ssh://root@%s/run/podman/podman.sock"
identity = %q
[engine.service_destinations.lab-1]
uri = %q
identity = %q
`, l.Addr(), key, uri1, key)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, []string{"CONTAINERS_CONF=" + conf}, "farm-nodes --timeout 2s")
	if r.elapsed > 4*time.Second {
		t.Errorf("took %s with --timeout 2s", r.elapsed)
	}
	nodes := nodesOf(decode(t, r.stdout))
	if nodes["hole"] == nil || !strings.Contains(nodes["hole"].Error, "no answer within 2s") {
		t.Fatalf("want a timeout error for the blackholed node: %+v", nodes["hole"])
	}
	if nodes["lab-1"] == nil || nodes["lab-1"].Error != "" {
		t.Fatalf("lab-1 should answer: %+v", nodes["lab-1"])
	}
}
