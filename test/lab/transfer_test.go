//go:build lab

package lab

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containers/image/v5/pkg/docker/config"
	"github.com/containers/image/v5/types"
	"github.com/farm-build/farm/lib/record"
)

// The image of these tests: an 8 MB layer of random bytes (made once per
// NONCE, then cached on the node), then one small file the tests change
// between builds.
const xferContainerfile = `FROM localhost/busybox:amd64
ARG NONCE
RUN echo "$NONCE" > /nonce && head -c 8000000 /dev/urandom > /big
COPY small.bin /small.bin
`

const bigLayer = 8_000_000

func xferContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(xferContainerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	relRandomFile(t, filepath.Join(dir, "small.bin"), 16<<10)
	return dir
}

// buildImage runs farm-build on a plan and returns the one image record.
func buildImage(t *testing.T, env []string, plan, tag, dir string, flags ...string) (*record.Image, result) {
	t.Helper()
	r := run(t, env, fmt.Sprintf("farm-build -t %s %s %s < %s", tag, strings.Join(flags, " "), dir, plan))
	if r.code != 0 {
		t.Fatalf("farm-build exit %d\nstdout: %s", r.code, r.stdout)
	}
	imgs := imagesOf(decode(t, r.stdout))
	if len(imgs) != 1 {
		t.Fatalf("want one image record, got %v", r.stdout)
	}
	for _, img := range imgs {
		return img, r
	}
	return nil, r
}

// removeLocal removes the test's images from local storage when it ends.
func removeLocal(t *testing.T, refs ...string) {
	t.Cleanup(func() {
		for _, ref := range refs {
			exec.Command("podman", "rmi", "-f", ref).Run()
		}
	})
}

// The point of the registry transfer: the second pull-back of an image
// whose base did not change moves the changed layer, not the base; an
// archive moves everything every time.
func TestTransferSecondRunMovesOnlyTheChangedLayer(t *testing.T) {
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()} // a cold transfer registry
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	dir := xferContext(t)
	tag := "localhost/farm-test/xfer-layers:1"
	removeLocal(t, tag+"-linux-amd64")
	nonce := "NONCE=" + strconv.FormatInt(time.Now().UnixNano(), 10)

	first, _ := buildImage(t, env, plan, tag, dir, "--transfer", "registry", "--build-arg", nonce)
	if first.Transfer != "registry" || first.BytesIn < bigLayer {
		t.Fatalf("first run: transfer %q, bytes_in %d; want registry and the whole new 8 MB layer", first.Transfer, first.BytesIn)
	}

	const changed = 16 << 10
	relRandomFile(t, filepath.Join(dir, "small.bin"), changed)
	second, r := buildImage(t, env, plan, tag, dir, "--transfer", "registry", "--build-arg", nonce)
	if second.ID == first.ID {
		t.Fatal("the changed file did not change the image")
	}
	// The changed layer (16 KiB of random bytes: zstd cannot shrink it),
	// plus the config, the manifest and the HTTP requests of the push.
	if second.Transfer != "registry" || second.BytesIn < changed || second.BytesIn > changed+64<<10 {
		t.Errorf("second run: transfer %q, bytes_in %d; want about the changed layer (%d bytes), far below the %d-byte base",
			second.Transfer, second.BytesIn, changed, bigLayer)
	}
	// Out: the context (the 16 KiB file, compressed) and the registry's
	// answers.
	if second.BytesOut < changed || second.BytesOut > 2*changed+64<<10 {
		t.Errorf("second run: bytes_out %d", second.BytesOut)
	}
	if !strings.Contains(r.stderr, "in, ") || !strings.Contains(r.stderr, "through the transfer registry") {
		t.Errorf("the log should say how the image came back and the bytes both ways")
	}

	// The very image the node built, under the record's ref and digest, and
	// no trace of the transfer registry in its names.
	sock := labVar(t, "FARM_LAB_1_SOCK")
	nodeID := podman(t, "--url", "unix://"+sock, "image", "inspect", second.Ref, "--format", "{{.Id}}")
	localID := podman(t, "image", "inspect", second.Ref, "--format", "{{.Id}}")
	if localID != second.ID || nodeID != second.ID {
		t.Errorf("image id: record %s, node %s, local %s", second.ID, nodeID, localID)
	}
	if d := podman(t, "image", "inspect", second.Ref, "--format", "{{.Digest}}"); d != second.Digest {
		t.Errorf("record digest %s, local inspect %s", second.Digest, d)
	}
	if names := podman(t, "image", "inspect", second.Ref, "--format", "{{.RepoTags}} {{.RepoDigests}}"); regexp.MustCompile(`127\.0\.0\.1:[0-9]+/farm/`).MatchString(names) {
		t.Errorf("the transfer registry's name stayed on the image: %s", names)
	}

	// For contrast: the archive carries the base again.
	relRandomFile(t, filepath.Join(dir, "small.bin"), changed)
	third, _ := buildImage(t, env, plan, tag, dir, "--transfer", "archive", "--build-arg", nonce)
	if third.Transfer != "archive" || third.BytesIn < bigLayer {
		t.Errorf("archive run: transfer %q, bytes_in %d; want archive and the whole image", third.Transfer, third.BytesIn)
	}
	t.Logf("bytes_in: first (registry, cold) %d, second (registry) %d, third (archive) %d", first.BytesIn, second.BytesIn, third.BytesIn)
}

var registryStarted = regexp.MustCompile(`msg="transfer registry started" addr=(\S+)`)

// The transfer registry listens on 127.0.0.1 only, even when the
// environment tells a registry otherwise (docker-registry took REGISTRY_*
// as overrides), and nothing answers there once the run is over: it is
// served by farm-build itself (lib/transfer's unit test checks the listener
// while it serves).
func TestTransferRegistryIsOnLoopbackOnlyAndStopsWithTheRun(t *testing.T) {
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	dir := xferContext(t)
	tag := "localhost/farm-test/xfer-loopback:1"
	removeLocal(t, tag+"-linux-amd64")
	env := []string{"XDG_CACHE_HOME=" + t.TempDir(), "REGISTRY_HTTP_ADDR=0.0.0.0:5999", "REGISTRY_HTTP_HOST=http://0.0.0.0:5999"}
	img, r := buildImage(t, env, plan, tag, dir, "--transfer", "registry")
	if img.Transfer != "registry" {
		t.Errorf("transfer %q, want registry", img.Transfer)
	}
	m := registryStarted.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no \"transfer registry started\" line:\n%s", r.stderr)
	}
	addr := m[1]
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("registry address %s", addr)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something still answers on %s after the run", addr)
	}
}

// A node whose sshd refuses remote forwarding: auto falls back to an
// archive and says why; --transfer registry fails (with the reason)
// instead. ("AllowTcpForwarding no" would refuse the stream-local forward to
// the podman socket too: podman itself could not use such a node.)
func TestTransferFallsBackToArchiveWithoutForwarding(t *testing.T) {
	for _, option := range []string{"AllowTcpForwarding local", "PermitListen none"} {
		t.Run(strings.Fields(option)[0], func(t *testing.T) { noForward(t, option) })
	}
}

func noForward(t *testing.T, option string) {
	lab := labVar(t, "FARM_LAB_DIR")
	key := labVar(t, "FARM_LAB_KEY")
	tmp := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// A second sshd in front of lab-1's podman: lab-1's host key and
	// authorized keys, the podman socket reachable (stream-local
	// forwarding), TCP forwarding off.
	sshdConfig := filepath.Join(tmp, "sshd_config")
	os.WriteFile(sshdConfig, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s/lab-1/ssh_host_ed25519_key
PidFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile %s/authorized_keys
StrictModes no
UsePAM no
AllowStreamLocalForwarding yes
%s
MaxSessions 64
LogLevel DEBUG1
`, port, lab, lab, option)), 0o600)
	sshdLog := filepath.Join(tmp, "sshd.log")
	logf, _ := os.Create(sshdLog)
	defer logf.Close()
	sshd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", sshdConfig)
	sshd.Stderr = logf
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshd.Process.Signal(syscall.SIGTERM); sshd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(sshdLog)
			t.Fatalf("sshd did not start: %s", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pub, err := os.ReadFile(filepath.Join(lab, "lab-1", "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	knownHosts := filepath.Join(tmp, "known_hosts")
	os.WriteFile(knownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, f[0], f[1])), 0o600)
	conf := filepath.Join(tmp, "containers.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[engine.service_destinations.noforward]\nuri = \"ssh://root@127.0.0.1:%d%s/lab-1/podman.sock\"\nidentity = %q\n", port, lab, key)), 0o600)
	env := []string{"CONTAINERS_CONF=" + conf, "FARM_KNOWN_HOSTS=" + knownHosts, "XDG_CACHE_HOME=" + tmp}

	dir := xferContext(t)
	tag := "localhost/farm-test/xfer-noforward:1"
	removeLocal(t, tag+"-linux-amd64")
	r := run(t, env, "set -o pipefail; farm-nodes | farm-plan --platforms linux/amd64 | farm-build -t "+tag+" "+dir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	img := imagesOf(decode(t, r.stdout))["linux/amd64"]
	if img == nil || img.Node != "noforward" || img.Transfer != "archive" || img.BytesIn < bigLayer {
		t.Fatalf("want an archive transfer from noforward, got %+v", img)
	}
	if !strings.Contains(r.stderr, "[linux/amd64@noforward] transfer: archive, not registry: the SSH server of noforward refuses port forwarding") {
		t.Errorf("stderr should say why the registry was not used")
	}
	// Started lazily: no node could use it, so there was none.
	if strings.Contains(r.stderr, "transfer registry started") {
		t.Errorf("the transfer registry was started for nothing")
	}
	// It was the sshd's answer: farm-build asked for a forward.
	if data, _ := os.ReadFile(sshdLog); !strings.Contains(string(data), "tcpip-forward listen 127.0.0.1") {
		t.Errorf("the sshd got no forward request:\n%s", data)
	}

	r = run(t, env, "farm-nodes | farm-plan --platforms linux/amd64 | farm-build --transfer registry -t "+tag+" --build-arg NONCE="+strconv.FormatInt(time.Now().UnixNano(), 10)+" "+dir)
	errs := errorsOf(decode(t, r.stdout))
	if r.code != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error, "refuses port forwarding") {
		t.Fatalf("--transfer registry on a node without forwarding: exit %d, errors %+v", r.code, errs)
	}
}

// recorder is a podman API proxy on a unix socket that keeps the headers
// of every request.
type recorder struct {
	mu   sync.Mutex
	reqs []recordedRequest
}

type recordedRequest struct {
	method, path string
	header       http.Header
}

func recordingProxy(t *testing.T, listen, target string) *recorder {
	t.Helper()
	rec := &recorder{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.Out.URL.Scheme, r.Out.URL.Host = "http", "d" },
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", target)
			},
			DisableCompression: true,
		},
		FlushInterval: -1, // build logs and push progress stream
	}
	l, err := net.Listen("unix", listen)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recordedRequest{r.Method, r.URL.Path, r.Header.Clone()})
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return rec
}

func (rec *recorder) matching(re *regexp.Regexp) []recordedRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []recordedRequest
	for _, r := range rec.reqs {
		if r.method == http.MethodPost && re.MatchString(r.path) {
			out = append(out, r)
		}
	}
	return out
}

// The user's credentials never go with a transfer: the push on the node and
// the pull here get an empty set of credentials (so neither service falls
// back to auth files of its own), although the environment holds some for
// 127.0.0.1 and for real registries. Both podman services are behind
// proxies that see every request's headers. (The transfer registry asks for
// no credentials, so podman would send it none even if it had them: its
// own log cannot tell. The podman API is where they would leak.)
func TestTransferSendsNoCredentials(t *testing.T) {
	tmp := t.TempDir()
	creds := func(user string) string {
		return `{"auth":"` + base64.StdEncoding.EncodeToString([]byte(user+":s3cret")) + `"}`
	}
	authFile := filepath.Join(tmp, "auth.json")
	os.WriteFile(authFile, []byte(`{"auths":{"127.0.0.1":`+creds("loopback")+`,"localhost":`+creds("localhost")+
		`,"127.0.0.1:5000":`+creds("lab")+`,"registry.example.com":`+creds("real")+`}}`), 0o600)
	os.MkdirAll(filepath.Join(tmp, "docker"), 0o700)
	os.WriteFile(filepath.Join(tmp, "docker", "config.json"), []byte(`{"auths":{"127.0.0.1":`+creds("docker")+`,"docker.io":`+creds("hub")+`}}`), 0o600)
	// The environment is one where containers/image (what pkg/bindings
	// reads credentials with) finds some; REGISTRY_AUTH_FILE is podman's
	// CLI's, set too for good measure.
	t.Setenv("DOCKER_CONFIG", filepath.Join(tmp, "docker"))
	all, err := config.GetAllCredentials(&types.SystemContext{})
	if err != nil || all["docker.io"].Username != "hub" || all["127.0.0.1"].Username != "docker" {
		t.Fatalf("the test's credentials are not visible: %v %v", all, err)
	}

	localSock := filepath.Join(tmp, "local.sock")
	relLocalService(t, localSock, t.TempDir())
	local := recordingProxy(t, filepath.Join(tmp, "local-proxy.sock"), localSock)
	node := recordingProxy(t, filepath.Join(tmp, "node-proxy.sock"), labVar(t, "FARM_LAB_1_SOCK"))
	conf := filepath.Join(tmp, "containers.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[engine.service_destinations.recorded]\nuri = \"unix://%s\"\n", filepath.Join(tmp, "node-proxy.sock"))), 0o600)

	dir := xferContext(t)
	tag := "localhost/farm-test/xfer-nocreds:1"
	removeLocal(t, tag+"-linux-amd64")
	env := []string{"REGISTRY_AUTH_FILE=" + authFile, "DOCKER_CONFIG=" + filepath.Join(tmp, "docker"),
		"CONTAINER_HOST=unix://" + filepath.Join(tmp, "local-proxy.sock"), "XDG_CACHE_HOME=" + tmp}
	r := run(t, env, "set -o pipefail; CONTAINERS_CONF="+conf+" farm-nodes | farm-plan --platforms linux/amd64 | farm-build --transfer registry -t "+tag+" "+dir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	if img := imagesOf(decode(t, r.stdout))["linux/amd64"]; img == nil || img.Transfer != "registry" {
		t.Fatalf("want a registry transfer: %s", r.stdout)
	}
	pushes := node.matching(regexp.MustCompile(`/images/[^/]+/push$`))
	pulls := local.matching(regexp.MustCompile(`/images/pull$`))
	// Two pulls: the run's probe of the route to the registry (once per
	// run, docs/transfer.md), then the image. Both carry no credentials.
	if len(pushes) != 1 || len(pulls) != 2 {
		t.Fatalf("want one push through the node's proxy and two pulls (probe, image) through the local one, got %d and %d", len(pushes), len(pulls))
	}
	for _, req := range append(pushes, pulls...) {
		if v := req.header.Values("X-Registry-Config"); len(v) > 0 {
			t.Errorf("%s carried X-Registry-Config %v", req.path, v)
		}
		if v := req.header.Get("Authorization"); v != "" {
			t.Errorf("%s carried Authorization", req.path)
		}
		auth := req.header.Values("X-Registry-Auth")
		raw, _ := base64.URLEncoding.DecodeString(strings.Join(auth, ""))
		if len(auth) != 1 || string(raw) != "{}" {
			t.Errorf("%s carried X-Registry-Auth %q: want exactly {}", req.path, raw)
		}
	}
}

// A unix:// node (a podman service on this machine) gets the registry
// through a loopback listener of farm-build's, counted like a forward.
func TestTransferUnixNode(t *testing.T) {
	tmp := t.TempDir()
	conf := filepath.Join(tmp, "containers.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[engine.service_destinations.lab-1-unix]\nuri = \"unix://%s\"\n", labVar(t, "FARM_LAB_1_SOCK"))), 0o600)
	dir := xferContext(t)
	tag := "localhost/farm-test/xfer-unix:1"
	removeLocal(t, tag+"-linux-amd64")
	r := run(t, []string{"XDG_CACHE_HOME=" + tmp},
		"set -o pipefail; CONTAINERS_CONF="+conf+" farm-nodes | farm-plan --platforms linux/amd64 | farm-build -t "+tag+" --build-arg NONCE="+strconv.FormatInt(time.Now().UnixNano(), 10)+" "+dir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	img := imagesOf(decode(t, r.stdout))["linux/amd64"]
	if img == nil || img.Node != "lab-1-unix" || img.Transfer != "registry" || img.BytesIn < bigLayer {
		t.Fatalf("want a registry transfer of the whole new image from lab-1-unix, got %+v", img)
	}
	if id := podman(t, "image", "inspect", img.Ref, "--format", "{{.Id}}"); id != img.ID {
		t.Errorf("local %s, record %s", id, img.ID)
	}
}

// Two runs at once, sharing one cache directory, pushing the very same
// layer from two nodes into it: both succeed (docker-registry's filesystem
// driver moves each finished blob into place with a rename).
func TestTransferConcurrentRunsShareTheCache(t *testing.T) {
	tmp := t.TempDir()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM localhost/busybox:amd64\nCOPY big.bin /big.bin\n"), 0o644)
	relRandomFile(t, filepath.Join(dir, "big.bin"), bigLayer)
	plan2 := pinnedJob(t, "linux/amd64", "lab-2")
	plan3 := pinnedJob(t, "linux/amd64", "lab-3")
	removeLocal(t, "localhost/farm-test/xfer-shared:2-linux-amd64", "localhost/farm-test/xfer-shared:3-linux-amd64")
	out := func(n string) string { return filepath.Join(tmp, n) }
	r := run(t, []string{"XDG_CACHE_HOME=" + tmp}, fmt.Sprintf(
		"farm-build --transfer registry -t localhost/farm-test/xfer-shared:2 %[1]s < %[2]s > %[4]s 2>%[4]s.err & a=$!; "+
			"farm-build --transfer registry -t localhost/farm-test/xfer-shared:3 %[1]s < %[3]s > %[5]s 2>%[5]s.err & b=$!; "+
			"wait $a; ea=$?; wait $b; eb=$?; cat %[4]s.err %[5]s.err >&2; exit $((ea + eb))",
		dir, plan2, plan3, out("2.jsonl"), out("3.jsonl")))
	if r.code != 0 {
		a, _ := os.ReadFile(out("2.jsonl"))
		b, _ := os.ReadFile(out("3.jsonl"))
		t.Fatalf("exit %d\n%s%s", r.code, a, b)
	}
	for _, n := range []string{"2", "3"} {
		data, _ := os.ReadFile(out(n + ".jsonl"))
		img := imagesOf(decode(t, string(data)))["linux/amd64"]
		if img == nil || img.Transfer != "registry" || img.Node != "lab-"+n {
			t.Fatalf("run on lab-%s: %s", n, data)
		}
		if id := podman(t, "image", "inspect", img.Ref, "--format", "{{.Id}}"); id != img.ID {
			t.Errorf("lab-%s: local %s, record %s", n, id, img.ID)
		}
	}
	// Both registries wrote the layer to the one directory, and both
	// served it: the stored blob is whole.
	blobs, _ := filepath.Glob(filepath.Join(tmp, "farm", "registry", "docker", "registry", "v2", "blobs", "sha256", "*", "*", "data"))
	var big int
	for _, b := range blobs {
		if fi, err := os.Stat(b); err == nil && fi.Size() > bigLayer {
			big++
		}
	}
	if big != 1 {
		t.Errorf("want the shared layer stored once, found %d blobs above %d bytes", big, bigLayer)
	}
}

// P5: the layer compression of the registry transfer. The default
// (--transfer-compression auto) is gzip, what podman push does: an image
// with zstd layers in local storage cannot be saved as a docker-archive.
// zstd when asked, from a podman 4.3.1 node and from a 5.4.2 one; gzip for
// a docker-format image whatever was asked (zstd needs an OCI manifest: the
// push would convert it and rewrite the config, which is another image).
// Each image arrives intact: it runs here and holds the file it was built
// with.
func TestTransferCompressionPerImage(t *testing.T) {
	for _, c := range []struct{ node, format, asked, want string }{
		{"lab-1", "oci", "auto", "gzip"}, {"lab-1", "oci", "zstd", "zstd"}, {"lab-p5", "oci", "zstd", "zstd"},
		{"lab-1", "docker", "zstd", "gzip"},
	} {
		t.Run(c.node+"-"+c.format+"-"+c.asked, func(t *testing.T) {
			plan := filepath.Join(t.TempDir(), "plan.jsonl")
			if r := run(t, nil, fmt.Sprintf("farm-nodes --node %s --timeout 60s | scripts/examples/pin-platform.sh linux/amd64=%s > %s", c.node, c.node, plan)); r.code != 0 {
				t.Fatalf("planning: exit %d", r.code)
			}
			dir := xferContext(t)
			tag := "localhost/farm-test/xfer-compression-" + c.node + "-" + c.format + "-" + c.asked + ":1"
			removeLocal(t, tag+"-linux-amd64")
			img, r := buildImage(t, []string{"XDG_CACHE_HOME=" + t.TempDir()}, plan, tag, dir,
				"--cleanup", "--format", c.format, "--transfer-compression", c.asked, "--build-arg", "NONCE="+relNonce())
			if img.Transfer != "registry" || !strings.Contains(r.stderr, "; "+c.want+" layers)") {
				t.Errorf("want a registry transfer of %s layers, got %q", c.want, img.Transfer)
			}
			small, err := os.ReadFile(filepath.Join(dir, "small.bin"))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%x", sha256.Sum256(small))
			if got := podman(t, "run", "--rm", img.Ref, "sha256sum", "/small.bin"); !strings.HasPrefix(got, want) {
				t.Errorf("the image's /small.bin: %q, want sha256 %s", got, want)
			}
		})
	}
}
