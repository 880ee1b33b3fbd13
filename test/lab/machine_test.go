//go:build lab

package lab

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/record"
)

// lab-machine (scripts/lab/part-lab-machine.sh) is what podman machine is
// to a macOS or Windows user: the LOCAL store is a podman service in a
// network namespace of its own (its 127.0.0.1 is not this machine's),
// reached only over its own sshd. These tests make it the local store, as
// a user would: by CONTAINER_HOST, by --connection, and as the default
// connection of a connections file of the test's own (never the lab's
// containers.conf: tests of "every connection" must not see it).

// machine is lab-machine's address and the podman CLI on its storage (the
// socket, to look into that storage; farm reaches it only over SSH).
type machine struct {
	uri, sock, key, hostKey, addr string
}

func labMachine(t *testing.T) machine {
	t.Helper()
	repo(t)
	if _, ok := labVars["FARM_LAB_MACHINE_URI"]; !ok {
		t.Fatal("lab-machine is not up: run scripts/farm-lab part lab-machine up")
	}
	return machine{
		uri: labVar(t, "FARM_LAB_MACHINE_URI"), sock: labVar(t, "FARM_LAB_MACHINE_SOCK"),
		key: labVar(t, "FARM_LAB_KEY"), hostKey: labVar(t, "FARM_LAB_MACHINE_HOST_KEY"),
		addr: "[" + labVar(t, "FARM_LAB_MACHINE_ADDR") + "]:" + labVar(t, "FARM_LAB_MACHINE_PORT"),
	}
}

func (m machine) podman(args ...string) (string, error) {
	out, err := exec.Command("podman", append([]string{"--url", "unix://" + m.sock}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// has says whether the machine's storage has an image or list by name/id.
func (m machine) has(ref string) bool {
	_, err := m.podman("image", "exists", ref)
	return err == nil
}

func hostHas(ref string) bool { return exec.Command("podman", "image", "exists", ref).Run() == nil }

// connectionsFile writes a podman-connections.json of the test's own
// naming lab-machine "machine" (the default when def), and returns the
// environment that makes farm read it.
func (m machine) connectionsFile(t *testing.T, def bool) []string {
	t.Helper()
	var f struct {
		Connection struct {
			Default     string `json:",omitempty"`
			Connections map[string]map[string]any
		}
	}
	f.Connection.Connections = map[string]map[string]any{"machine": {"URI": m.uri, "Identity": m.key, "IsMachine": true}}
	if def {
		f.Connection.Default = "machine"
	}
	data, _ := json.Marshal(f)
	path := filepath.Join(t.TempDir(), "podman-connections.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"PODMAN_CONNECTIONS_CONF=" + path}
}

// genHostKey makes an ed25519 key pair and returns its private key file
// and its public key as known_hosts has it ("ssh-ed25519 AAAA...").
func genHostKey(t *testing.T) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return path, f[0] + " " + f[1]
}

// The whole pipeline with lab-machine as the local store, named the three
// ways podman names its service: the image and the list are in the
// machine's storage, none in this machine's, and the images came through
// the transfer registry (the machine pulled through a forward on its own
// SSH connection: its 127.0.0.1 is not this machine's).
func TestMachineAsTheLocalStore(t *testing.T) {
	m := labMachine(t)
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	base := []string{"XDG_CACHE_HOME=" + t.TempDir(), "CONTAINER_HOST=", "CONTAINER_CONNECTION=", "CONTAINER_SSHKEY="}
	for _, tc := range []struct {
		name   string
		env    []string
		flags  []string
		source string
	}{
		{name: "CONTAINER_HOST", env: []string{"CONTAINER_HOST=" + m.uri, "CONTAINER_SSHKEY=" + m.key}, flags: []string{"--transfer", "registry"}, source: "from=CONTAINER_HOST"},
		{name: "--connection", env: m.connectionsFile(t, false), flags: []string{"--connection", "machine", "--transfer", "registry"}, source: `from="--connection machine"`},
		// --transfer auto (the default): the probe finds the forward.
		{name: "default connection", env: m.connectionsFile(t, true), source: `from="default connection machine"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := xferContext(t)
			tag := "localhost/farm-test/machine-" + strings.ToLower(strings.Trim(strings.ReplaceAll(tc.name, " ", "-"), "-")) + ":1"
			t.Cleanup(func() {
				m.podman("manifest", "rm", tag) // a list: rmi does not take it
				m.podman("rmi", "-f", tag+"-linux-amd64")
			})
			env := append(append([]string{}, base...), tc.env...)
			r := run(t, env, fmt.Sprintf("set -o pipefail; farm-build -t %s %s --build-arg NONCE=%d %s < %s | tee %s/images.jsonl | farm-manifest %s",
				tag, strings.Join(tc.flags, " "), time.Now().UnixNano(), dir, plan, dir, machineFlags(tc.flags)))
			if r.code != 0 {
				t.Fatalf("pipeline exit %d\nstdout: %s", r.code, r.stdout)
			}
			img := onlyImage(t, filepath.Join(dir, "images.jsonl"))
			if img.Transfer != "registry" {
				t.Errorf("transfer %q, want registry (the machine through a forward on its SSH connection)", img.Transfer)
			}
			if strings.Count(r.stderr, tc.source) != 2 {
				t.Errorf("farm-build and farm-manifest should each log the local store %s", tc.source)
			}
			if !m.has(img.ID) || !m.has(tag) {
				t.Errorf("lab-machine lacks the image %s or the list %s", img.ID, tag)
			}
			if out, err := m.podman("manifest", "inspect", tag); err != nil || !strings.Contains(out, img.Digest) {
				t.Errorf("the list in lab-machine does not name %s: %v %s", img.Digest, err, out)
			}
			if hostHas(img.ID) || hostHas(tag) || hostHas(img.Ref) {
				t.Errorf("the image or the list landed in this machine's own storage")
			}
		})
	}
}

// machineFlags keeps the flags farm-manifest shares with farm-build.
func machineFlags(flags []string) string {
	for i, f := range flags {
		if f == "--connection" && i+1 < len(flags) {
			return "--connection " + flags[i+1]
		}
	}
	return ""
}

func onlyImage(t *testing.T, path string) *record.Image {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	imgs := imagesOf(decode(t, string(data)))
	if len(imgs) != 1 {
		t.Fatalf("want one image record, got %s", data)
	}
	for _, img := range imgs {
		return img
	}
	return nil
}

// Only missing layers cross to a podman machine too: the second pull-back
// after a small change moves the changed layer, not the 8 MB one below it.
func TestMachineTransferByLayers(t *testing.T) {
	m := labMachine(t)
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	dir := xferContext(t)
	tag := "localhost/farm-test/machine-layers:1"
	t.Cleanup(func() { m.podman("rmi", "-f", tag+"-linux-amd64") })
	env := []string{"XDG_CACHE_HOME=" + t.TempDir(), "CONTAINER_HOST=" + m.uri, "CONTAINER_SSHKEY=" + m.key, "CONTAINER_CONNECTION="}
	nonce := "NONCE=" + strconv.FormatInt(time.Now().UnixNano(), 10)
	first, _ := buildImage(t, env, plan, tag, dir, "--transfer", "registry", "--build-arg", nonce)
	if first.Transfer != "registry" || first.BytesIn < bigLayer {
		t.Fatalf("first run: transfer %q, bytes_in %d; want registry and the whole new 8 MB layer", first.Transfer, first.BytesIn)
	}
	const changed = 16 << 10
	relRandomFile(t, filepath.Join(dir, "small.bin"), changed)
	second, _ := buildImage(t, env, plan, tag, dir, "--transfer", "registry", "--build-arg", nonce)
	if second.Transfer != "registry" || second.BytesIn < changed || second.BytesIn > changed+64<<10 {
		t.Errorf("second run: transfer %q, bytes_in %d; want about the changed layer (%d bytes), far below the %d-byte base",
			second.Transfer, second.BytesIn, changed, bigLayer)
	}
	if !m.has(second.ID) || hostHas(second.ID) || hostHas(first.ID) {
		t.Errorf("want the images in lab-machine only")
	}
	t.Logf("bytes_in: first (cold) %d, second %d", first.BytesIn, second.BytesIn)
}

// The machine's API as a unix socket on this machine (as podman machine
// gives on macOS): the socket is here, the service is not, and its
// 127.0.0.1 is its own. The probe finds that out before the node pushes:
// auto brings the image as an archive and says why; --transfer registry
// fails without a push.
func TestMachineBehindAUnixSocketCannotReachTheRegistry(t *testing.T) {
	m := labMachine(t)
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	dir := xferContext(t)
	tag := "localhost/farm-test/machine-unix:1"
	t.Cleanup(func() { m.podman("rmi", "-f", tag+"-linux-amd64") })
	env := []string{"XDG_CACHE_HOME=" + t.TempDir(), "CONTAINER_HOST=unix://" + m.sock, "CONTAINER_CONNECTION="}
	img, r := buildImage(t, env, plan, tag, dir, "--transfer", "auto")
	if img.Transfer != "archive" || !strings.Contains(r.stderr, "transfer: archive, not registry: the local podman service") ||
		!strings.Contains(r.stderr, "cannot reach the transfer registry") {
		t.Errorf("auto: transfer %q; want archive, saying the local service cannot reach the registry", img.Transfer)
	}
	if !m.has(img.ID) || hostHas(img.ID) {
		t.Errorf("want the image in lab-machine only")
	}
	if strings.Contains(r.stderr, "pushes to") {
		t.Errorf("the node pushed to a registry the local service cannot reach")
	}

	relRandomFile(t, filepath.Join(dir, "small.bin"), 16<<10)
	r = run(t, env, fmt.Sprintf("farm-build -t %s --transfer registry %s < %s", tag, dir, plan))
	if r.code != 1 || !strings.Contains(r.stdout, "cannot reach the transfer registry") || strings.Contains(r.stderr, "pushes to") {
		t.Errorf("registry: exit %d; want 1, an error record saying the local service cannot reach the registry, and no push", r.code)
	}
}

// The local store's SSH is farm's own: an unknown host key is refused
// with the ssh-keyscan hint and not added to known_hosts; a changed one is
// refused too. Nothing is built, and no private service replaces it.
func TestMachineUnknownHostKeyRefused(t *testing.T) {
	m := labMachine(t)
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	dir := xferContext(t)
	key, err := os.ReadFile(m.hostKey)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey := genHostKey(t)
	for _, tc := range []struct {
		name, knownHosts string
		want             []string
	}{
		{name: "unknown", knownHosts: "", want: []string{"is not in known_hosts", "ssh-keyscan", "CONTAINER_HOST"}},
		{name: "changed", knownHosts: m.addr + " " + otherKey + "\n", want: []string{"has CHANGED", "ssh-keygen -R"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tc.knownHosts), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"FARM_KNOWN_HOSTS=" + kh, "CONTAINER_HOST=" + m.uri, "CONTAINER_SSHKEY=" + m.key}
			r := run(t, env, fmt.Sprintf("farm-build -t localhost/farm-test/machine-hostkey:1 %s < %s", dir, plan))
			if r.code != 1 {
				t.Fatalf("exit %d, want 1", r.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) || !strings.Contains(r.stdout, w) {
					t.Errorf("stderr and the error record should say %q", w)
				}
			}
			if strings.Contains(r.stderr, "STEP 1/") || strings.Contains(r.stderr, "private service") {
				t.Errorf("built anyway, or started a private service instead")
			}
			if after, _ := os.ReadFile(kh); string(after) != tc.knownHosts || strings.Contains(string(after), strings.Fields(string(key))[1]) {
				t.Errorf("known_hosts changed:\n%s", after)
			}
		})
	}
}

// A local store that accepts TCP and never speaks: farm-build fails within
// its --timeout, farm-manifest within the 10 s default, each naming it.
func TestMachineBlackholedStoreTimesOut(t *testing.T) {
	addr := podmantest.Blackhole(t)
	m := labMachine(t)
	uri := "ssh://root@" + addr + "/run/podman/podman.sock"
	env := []string{"CONTAINER_HOST=" + uri, "CONTAINER_SSHKEY=" + m.key}
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	r := run(t, env, fmt.Sprintf("farm-build -t localhost/farm-test/machine-blackhole:1 --timeout 3s %s < %s", xferContext(t), plan))
	if r.code != 1 || !strings.Contains(r.stdout, "no answer within 3s") || r.elapsed > 8*time.Second {
		t.Errorf("farm-build: exit %d after %s; want 1 within the 3 s --timeout, saying so", r.code, r.elapsed)
	}
	images := filepath.Join(t.TempDir(), "images.jsonl")
	line := `{"v":1,"kind":"image","platform":"linux/amd64","node":"lab-1","id":"` + strings.Repeat("a", 64) + `","tag":"localhost/farm-test/machine-blackhole:1","ref":"localhost/farm-test/machine-blackhole:1-linux-amd64"}`
	relWriteFile(t, images, line+"\n"+`{"v":1,"kind":"end","stage":"farm-build"}`+"\n")
	r = run(t, env, "farm-manifest < "+images)
	if r.code != 1 || !strings.Contains(r.stderr, "no answer within 10s") || !strings.Contains(r.stderr, "127.0.0.1:") || r.elapsed > 16*time.Second {
		t.Errorf("farm-manifest: exit %d after %s; want 1 within the 10 s default, naming the store", r.code, r.elapsed)
	}
}

// A default connection that points nowhere (a name with no connection, or
// a machine that is not running) is an error naming it: never a private
// service on this machine instead, and nothing built.
func TestMachineDefaultConnectionPointsNowhere(t *testing.T) {
	m := labMachine(t)
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	dir := xferContext(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped := closed.Addr().String()
	closed.Close() // a machine that is not running: nothing listens there
	for _, tc := range []struct {
		name string
		conn string // podman-connections.json
		want []string
	}{
		{name: "no such connection", conn: `{"Connection":{"Default":"gone","Connections":{}}}`,
			want: []string{"default connection gone names no system connection", "podman system connection default"}},
		{name: "stopped machine", conn: `{"Connection":{"Default":"machine","Connections":{"machine":{"URI":"ssh://root@` + stopped + `/run/podman/podman.sock","Identity":"` + m.key + `"}}}}`,
			want: []string{"(default connection machine)", "connecting to " + stopped, "connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := relWriteFile(t, filepath.Join(t.TempDir(), "podman-connections.json"), tc.conn)
			env := []string{"PODMAN_CONNECTIONS_CONF=" + path, "CONTAINER_HOST=", "CONTAINER_CONNECTION="}
			r := run(t, env, fmt.Sprintf("farm-build -t localhost/farm-test/machine-nowhere:1 %s < %s", dir, plan))
			if r.code != 1 {
				t.Fatalf("exit %d, want 1", r.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("the error record should say %q: %s", w, r.stdout)
				}
			}
			if strings.Contains(r.stderr, "private service") || strings.Contains(r.stderr, "STEP 1/") {
				t.Errorf("a private service or a build instead of the error")
			}
		})
	}
}
