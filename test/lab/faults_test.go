//go:build lab

package lab

// The fault suite (issue #6): each test breaks one thing on purpose (a node,
// the network, the local podman service, the registry, the user's patience)
// and checks what the user sees and what is left behind. docs/reliability.md
// has the table; every row names its test. Helpers here are prefixed "rel"
// and shared by badinput_test.go, secrets_test.go and concurrency_test.go.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
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

	"github.com/farm-build/farm/lib/buildctx"
	"github.com/farm-build/farm/lib/record"
)

// relProc is a stage, or bash running a pipeline, in the background, with
// its stdout and stderr in files the test can poll.
type relProc struct {
	cmd            *exec.Cmd
	stdout, stderr string
	started        time.Time
	done           chan struct{}
	code           int
}

// relStart starts prog (a farm binary from bin/, or any program on PATH)
// from the repository root. stdin may be nil, an *os.File or any reader.
func relStart(t *testing.T, env []string, stdin io.Reader, prog string, args ...string) *relProc {
	t.Helper()
	root := repo(t)
	dir := t.TempDir()
	p := &relProc{stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	path := prog
	if bin := filepath.Join(root, "bin", prog); !strings.Contains(prog, "/") && fileExists(bin) {
		path = bin
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Dir = root
	p.cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
	p.cmd.Env = append(p.cmd.Env, env...)
	outf, err := os.Create(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = stdin, outf, errf
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", prog, err)
	}
	go func() {
		err := p.cmd.Wait()
		outf.Close()
		errf.Close()
		p.code = 0
		if exit, ok := err.(*exec.ExitError); ok {
			p.code = exit.ExitCode()
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit code, failing the test if it takes longer than
// timeout.
func (p *relProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %s; stderr:\n%s", p.cmd.Path, timeout, relRead(p.stderr))
	}
	t.Logf("$ %s (exit %d, %s)\nstderr:\n%s", strings.Join(p.cmd.Args, " "), p.code,
		time.Since(p.started).Round(time.Millisecond), relRead(p.stderr))
	return p.code
}

func (p *relProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *relProc) records(t *testing.T) []record.Record {
	t.Helper()
	return decode(t, relRead(p.stdout))
}

func relRead(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func relOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// relWaitFor polls a file (fast: some faults must land within a moment)
// until it contains text, and returns its content then.
func relWaitFor(t *testing.T, p *relProc, path, text string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data := relRead(path)
		if strings.Contains(data, text) {
			return data
		}
		if p != nil && !p.running() {
			t.Fatalf("%s exited (%d) before %q appeared:\n%s", p.cmd.Path, p.code, text, relRead(p.stderr))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not appear in %s within %s:\n%s", text, path, timeout, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// relNonce is unique per call: a build arg that makes a new image, or a
// marker to grep for.
func relNonce() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatUint(rand.Uint64()%1e6, 36)
}

// relContext writes a build context: files by slash path.
func relContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// relRandomFile writes size bytes that do not compress.
func relRandomFile(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	src := rand.NewChaCha8(seed)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= len(buf) {
		src.Read(buf)
		n := min(left, len(buf))
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
	}
}

// The contexts of the fault tests. nonceFile: every build arg NONCE gives a
// new image. bigImageFile: a 200 MB layer of random bytes, so that pulling
// it back takes a moment.
const (
	nonceFile = `ARG TARGETARCH
FROM localhost/busybox:${TARGETARCH}
ARG NONCE
RUN echo "$NONCE" > /nonce
CMD ["cat", "/nonce"]
`
	bigImageFile = `ARG TARGETARCH
FROM localhost/busybox:${TARGETARCH}
ARG NONCE
RUN echo "$NONCE" > /nonce && head -c 200000000 /dev/urandom > /big
`
)

// relPlan plans platforms on the lab farm and returns the plan file.
func relPlan(t *testing.T, platforms string) string {
	t.Helper()
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, "set -o pipefail; farm-nodes --farm lab | farm-plan --platforms "+platforms+" > "+plan); r.code != 0 {
		t.Fatalf("planning: exit %d", r.code)
	}
	return plan
}

// relImage is what `podman images --format json` says of one image.
type relImage struct {
	ID    string `json:"Id"`
	Names []string
}

func relImages(t *testing.T, url string) []relImage {
	t.Helper()
	args := []string{"images", "-a", "--format", "json"}
	if url != "" {
		args = append([]string{"--url", url}, args...)
	}
	var out []byte
	for try := 1; ; try++ {
		var stderr bytes.Buffer
		cmd := exec.Command("podman", args...)
		cmd.Stderr = &stderr
		var err error
		if out, err = cmd.Output(); err == nil {
			break
		}
		// Listing fails for a moment while another process commits an
		// image to the same storage ("locating item named manifest").
		if try == 5 {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		time.Sleep(time.Second)
	}
	var imgs []relImage
	if err := json.Unmarshal(out, &imgs); err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return imgs
}

// relLabNodes is the lab's nodes: name -> unix:// URL of its podman service.
func relLabNodes(t *testing.T) map[string]string {
	t.Helper()
	nodes := map[string]string{}
	for i, name := range strings.Fields(labVar(t, "FARM_LAB_NODES")) {
		nodes[name] = "unix://" + labVar(t, fmt.Sprintf("FARM_LAB_%d_SOCK", i+1))
	}
	return nodes
}

// relFindImage lists where (local: "" or a lab node) an image whose id
// starts with idPrefix, or which is named name, is stored.
func relFindImage(t *testing.T, idPrefix, name string) []string {
	t.Helper()
	var where []string
	check := func(place, url string) {
		for _, img := range relImages(t, url) {
			if idPrefix != "" && strings.HasPrefix(img.ID, idPrefix) || name != "" && contains(img.Names, name) {
				where = append(where, fmt.Sprintf("%s (%s %v)", place, img.ID[:12], img.Names))
			}
		}
	}
	check("local", "")
	for node, url := range relLabNodes(t) {
		check(node, url)
	}
	return where
}

// relRemoveOnNodes removes the test's images by name from every lab node
// (a big image's layer goes with it). Never a prune: other tests share the
// nodes' storage and caches.
func relRemoveOnNodes(t *testing.T, names ...string) {
	for _, url := range relLabNodes(t) {
		for _, n := range names {
			exec.Command("podman", "--url", url, "rmi", "-f", n).Run()
		}
	}
}

// relRemoveLocal removes lists and images of a test from local storage,
// when the test is over.
func relRemoveLocal(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			if exec.Command("podman", "manifest", "exists", n).Run() == nil {
				exec.Command("podman", "manifest", "rm", n).Run()
			} else {
				exec.Command("podman", "rmi", n).Run()
			}
		}
	})
}

var relImageIDLine = regexp.MustCompile(`(?m)^\[[^]]+\] ([0-9a-f]{64})$`)

// relBuiltIDs are the image ids the build logs in stderr announce.
func relBuiltIDs(stderr string) []string {
	var ids []string
	for _, m := range relImageIDLine.FindAllStringSubmatch(stderr, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

var relJobLine = regexp.MustCompile(`job=(farm-[0-9a-f]+)`)

// relJobIDs are the job ids farm-build --log-level debug logs: each job's
// cgroup on its node is named after it.
func relJobIDs(stderr string) []string {
	var ids []string
	for _, m := range relJobLine.FindAllStringSubmatch(stderr, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// relNoJobLeft checks that nothing of the jobs runs on any node (every lab
// node is this machine): no cgroup of theirs is left, let alone a process.
func relNoJobLeft(t *testing.T, jobs []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, job := range jobs {
			for _, pattern := range []string{"/sys/fs/cgroup/*/" + job + "*", "/sys/fs/cgroup/*/*/" + job + "*", "/sys/fs/cgroup/" + job + "*"} {
				dirs, _ := filepath.Glob(pattern)
				for _, d := range dirs {
					procs, _ := exec.Command("sh", "-c", "find "+d+" -name cgroup.procs -exec cat {} +").Output()
					left = append(left, fmt.Sprintf("%s (processes: %s)", d, strings.Fields(string(procs))))
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs left behind on the nodes after %s: %v", timeout, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func relWriteFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ---------------------------------------------------------------- nodes down

// A node whose sshd is down and a node that accepts TCP but never speaks
// are in the farm: farm-nodes reports both within --timeout, farm-plan goes
// around them, and the list is complete.
func TestPipelineGoesAroundDownAndBlackholedNodes(t *testing.T) {
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close() // never Accept: the SSH handshake gets no answer
	key := labVar(t, "FARM_LAB_KEY")
	dir := t.TempDir()
	conf := relWriteFile(t, filepath.Join(dir, "containers.conf"), fmt.Sprintf(`[engine.service_destinations.lab-1]
uri = %q
identity = %q
[engine.service_destinations.lab-2]
uri = %q
identity = %q
[engine.service_destinations.hole]
uri = "ssh://root@%s/run/podman/podman.sock"
identity = %q
`, labVar(t, "FARM_LAB_1_URI"), key, labVar(t, "FARM_LAB_2_URI"), key, hole.Addr(), key))
	lab(t, "sshd-stop", "lab-2")
	t.Cleanup(func() { lab(t, "sshd-start", "lab-2") })

	image := "localhost/farm-test/around:" + relNonce()
	relRemoveLocal(t, image, image+"-linux-amd64", image+"-linux-arm64")
	t.Cleanup(func() { relRemoveOnNodes(t, image+"-linux-amd64", image+"-linux-arm64") })
	nodes, plan := filepath.Join(dir, "nodes.jsonl"), filepath.Join(dir, "plan.jsonl")
	// CONTAINERS_CONF for farm-nodes only: containers/common then reads that
	// file and nothing else, so the farm is exactly these three nodes.
	r := run(t, []string{"CONTAINERS_CONF=" + conf}, "farm-nodes --timeout 3s > "+nodes)
	if r.code != 0 {
		t.Fatalf("farm-nodes exit %d, want 0 while lab-1 answers", r.code)
	}
	if r.elapsed > 5*time.Second {
		t.Errorf("farm-nodes took %s with --timeout 3s", r.elapsed)
	}
	recs := decode(t, relRead(nodes))
	byName := nodesOf(recs)
	if n := byName["lab-2"]; n == nil || !strings.Contains(n.Error, "connection refused") {
		t.Errorf("lab-2 (sshd down) should be an error record saying connection refused: %+v", n)
	}
	if n := byName["hole"]; n == nil || !strings.Contains(n.Error, "no answer within 3s") {
		t.Errorf("the blackholed node should time out: %+v", n)
	}
	if n := byName["lab-1"]; n == nil || n.Error != "" {
		t.Fatalf("lab-1 should answer: %+v", n)
	}
	r = run(t, nil, fmt.Sprintf("set -o pipefail; farm-plan --platforms linux/amd64,linux/arm64 < %s | tee %s "+
		"| farm-build -t %s test/lab/testdata/targetarch | farm-manifest", nodes, plan, image))
	if r.code != 0 {
		t.Fatalf("pipeline exit %d", r.code)
	}
	for _, rec := range decode(t, relRead(plan)) {
		job, ok := rec.(*record.Job)
		if !ok {
			t.Fatalf("plan holds a %s record: %+v", rec.Kind(), rec)
		}
		if job.Node.Name != "lab-1" || len(job.Alternatives) != 0 {
			t.Errorf("%s planned on %s with alternatives %v: only lab-1 is up", job.Platform, job.Node.Name, planNames(job.Alternatives))
		}
	}
	for _, name := range []string{"lab-2", "hole"} {
		if !strings.Contains(r.stderr, "skipping unreachable node") || !strings.Contains(r.stderr, "node="+name) {
			t.Errorf("farm-plan should say it skips %s", name)
		}
	}
	out := decode(t, r.stdout)
	m, ok := out[0].(*record.Manifest)
	if len(out) != 1 || !ok || len(m.Instances) != 2 {
		t.Fatalf("want one manifest record with 2 instances: %s", r.stdout)
	}
	var list struct {
		Manifests []struct {
			Platform struct{ OS, Architecture string }
		}
	}
	if err := json.Unmarshal([]byte(podman(t, "manifest", "inspect", image)), &list); err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, e := range list.Manifests {
		plats = append(plats, e.Platform.OS+"/"+e.Platform.Architecture)
	}
	if len(plats) != 2 || !contains(plats, "linux/amd64") || !contains(plats, "linux/arm64") {
		t.Fatalf("list %s holds %v", image, plats)
	}
}

// ------------------------------------------------------ local service dies

// relLocalService starts a podman service of this machine's own storage on
// sock (what CONTAINER_HOST points farm-build at) and waits until it answers.
// Its temporary files go to tmpdir.
func relLocalService(t *testing.T, sock, tmpdir string) *exec.Cmd {
	t.Helper()
	os.Remove(sock)
	cmd := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmpdir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command("podman", "--url", "unix://"+sock, "version").Run() == nil {
			return cmd
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("podman system service on %s did not answer", sock)
	return nil
}

// relReadBytes is how many bytes process pid has read so far (from files
// and sockets alike).
func relReadBytes(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^rchar: (\d+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("/proc/%d/io: %s", pid, data)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// relMidTransfer waits until farm-build says it pulls back and the local
// service has then read more than 20 MB of the image: the transfer is well
// under way (and, with a 200 MB image, far from done).
func relMidTransfer(t *testing.T, p *relProc, svc *exec.Cmd) {
	t.Helper()
	relWaitFor(t, p, p.stderr, "pulling back", 3*time.Minute)
	base := relReadBytes(t, svc.Process.Pid)
	deadline := time.Now().Add(time.Minute)
	for relReadBytes(t, svc.Process.Pid)-base < 20<<20 {
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("the local service did not receive the image:\n%s", relRead(p.stderr))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The local podman service dies while an image comes back: farm-build says
// the local service failed (naming it), does not rebuild on another node for
// nothing, and local storage holds nothing of the image.
func TestLocalServiceDiesDuringPullBack(t *testing.T) {
	ctxDir := relContext(t, map[string]string{"Containerfile": bigImageFile})
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	for _, mode := range []string{"archive", "registry"} {
		t.Run(mode, func(t *testing.T) {
			sock, tmpdir := filepath.Join(t.TempDir(), "podman.sock"), t.TempDir()
			svc := relLocalService(t, sock, tmpdir)
			tag := "localhost/farm-test/localdies-" + mode + ":1"
			t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64") })
			p := relStart(t, []string{"CONTAINER_HOST=unix://" + sock}, relOpen(t, plan), "farm-build",
				"-t", tag, "--transfer", mode, "--build-arg", "NONCE="+relNonce(), ctxDir)
			relMidTransfer(t, p, svc)
			svc.Process.Kill()
			code := p.wait(t, 2*time.Minute)
			stderr := relRead(p.stderr)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			recs := p.records(t)
			errs := errorsOf(recs)
			if len(imagesOf(recs)) != 0 || len(errs) != 1 {
				t.Fatalf("want one error record and no image: %s", relRead(p.stdout))
			}
			if e := errs[0]; e.Platform != "linux/amd64" || !strings.Contains(e.Error, "local podman service unix://"+sock) {
				t.Errorf("the error record should blame the local podman service %s: %+v", sock, e)
			}
			if strings.Contains(stderr, "failing over") {
				t.Errorf("a local failure must not make the job fail over to another node")
			}
			ids := relBuiltIDs(stderr)
			if len(ids) != 1 {
				t.Fatalf("want the one image id in the build log, got %v", ids)
			}
			// The service comes back: the store it shares with the podman
			// CLI has nothing of the image, not even untagged.
			relLocalService(t, sock, tmpdir)
			for _, img := range relImages(t, "unix://"+sock) {
				if img.ID == ids[0] || contains(img.Names, tag+"-linux-amd64") {
					t.Errorf("local storage holds the image after a failed pull-back: %+v", img)
				}
			}
			// The node keeps the image: a re-run reuses it.
			if where := strings.Join(relFindImage(t, ids[0], ""), " "); !strings.Contains(where, "lab-1 (") {
				t.Errorf("lab-1 should keep the built image, found: %s", where)
			}
			// The killed service could not remove its temporary files: the
			// part of the image it had received (docs/reliability.md).
			left, _ := os.ReadDir(tmpdir)
			for _, e := range left {
				t.Logf("left behind by the killed service in its $TMPDIR: %s", e.Name())
			}
			if hub := regexp.MustCompile(`transfer registry started.* pid=(\d+)`).FindStringSubmatch(stderr); hub != nil {
				relGone(t, hub[1], 10*time.Second)
			}
		})
	}
}

// relGone waits until process pid no longer runs (a zombie counts as gone:
// PID 1 here does not always reap orphans).
func relGone(t *testing.T, pid string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			t.Fatalf("process %s (%s) still runs", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ------------------------------------------------------------- registry down

// relRegistry is a docker-registry of the test's own (port, storage), so
// stopping it disturbs nobody else's tests.
type relRegistry struct {
	addr, conf string
	cmd        *exec.Cmd
	exited     chan struct{}
}

// relStartRegistry starts a registry; with htpasswd set (a bcrypt htpasswd
// line) it asks for credentials.
func relStartRegistry(t *testing.T, htpasswd string) *relRegistry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", dir, addr)
	if htpasswd != "" {
		relWriteFile(t, filepath.Join(dir, "htpasswd"), htpasswd+"\n")
		conf += fmt.Sprintf("auth:\n  htpasswd:\n    realm: farm-test\n    path: %s/htpasswd\n", dir)
	}
	r := &relRegistry{addr: addr, conf: relWriteFile(t, filepath.Join(dir, "config.yml"), conf)}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *relRegistry) start(t *testing.T) {
	t.Helper()
	if r.cmd != nil {
		return
	}
	r.cmd = exec.Command("docker-registry", "serve", r.conf)
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, io.Discard
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("docker-registry: %v", err)
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(r.cmd, r.exited)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + r.addr + "/v2/"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("registry on %s did not answer", r.addr)
}

// stop kills the registry: from outside, it is down.
func (r *relRegistry) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// relSkopeoRaw is `skopeo inspect --raw` of ref in the test registry: the
// manifest, or the error skopeo printed.
func relSkopeoRaw(ref string, extra ...string) (string, error) {
	args := append([]string{"inspect", "--raw", "--tls-verify=false"}, extra...)
	out, err := exec.Command("skopeo", append(args, "docker://"+ref)...).CombinedOutput()
	return string(out), err
}

// The registry is down while the nodes push (farm-build --push) or while
// farm-manifest writes the list there: each retries with a pause and says
// so; a registry that stays down is a clear error naming it, and the
// registry gets no list, not even part of one; one that comes back in time
// gets the whole list.
func TestRegistryDown(t *testing.T) {
	reg := relStartRegistry(t, "")
	plan := relPlan(t, "linux/amd64,linux/arm64")
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	buildPush := func(t *testing.T, image string) *relProc {
		t.Cleanup(func() { relRemoveOnNodes(t, image+"-linux-amd64", image+"-linux-arm64") })
		return relStart(t, nil, relOpen(t, plan), "farm-build", "--push", "--tls-verify=false",
			"-t", image, "--build-arg", "NONCE="+relNonce(), ctxDir)
	}
	retries := func(stderr string) int { return strings.Count(stderr, "retrying in") }
	noList := func(t *testing.T, image string) {
		t.Helper()
		out, err := relSkopeoRaw(image)
		if err == nil || !strings.Contains(out, "manifest unknown") && !strings.Contains(out, "name unknown") {
			t.Errorf("the registry should have no %s after the failure; skopeo (err %v): %s", image, err, out)
		}
	}

	t.Run("push/stays-down", func(t *testing.T) {
		image := reg.addr + "/farm-test/regdown:push"
		reg.stop()
		defer reg.start(t)
		p := buildPush(t, image)
		code := p.wait(t, 3*time.Minute)
		stderr := relRead(p.stderr)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		recs := p.records(t)
		errs := errorsOf(recs)
		if len(imagesOf(recs)) != 0 || len(errs) != 2 {
			t.Fatalf("want 2 error records and no image: %s", relRead(p.stdout))
		}
		for _, e := range errs {
			if !strings.Contains(e.Error, reg.addr) || !strings.Contains(e.Error, "connection refused") {
				t.Errorf("the error should name the registry and say why: %+v", e)
			}
		}
		if n := retries(stderr); n < 2*3 {
			t.Errorf("want 3 retries per platform logged, got %d", n)
		}
		if strings.Contains(stderr, "failing over") {
			t.Errorf("a registry that is down is no reason to rebuild on another node")
		}
		ids := relBuiltIDs(stderr)
		if len(ids) != 2 {
			t.Fatalf("want 2 image ids in the build log, got %v", ids)
		}
		for _, id := range ids {
			if where := relFindImage(t, id, ""); len(where) != 0 {
				t.Errorf("an image that could not be pushed stays stored: %v", where)
			}
		}
		r := run(t, nil, "farm-manifest --tls-verify=false < "+p.stdout)
		if r.code != 1 || len(errorsOf(decode(t, r.stdout))) != 2 {
			t.Errorf("farm-manifest must pass the errors on and make no list: exit %d", r.code)
		}
		reg.start(t)
		noList(t, image)
		noList(t, image+"-linux-amd64")
	})

	t.Run("push/comes-back", func(t *testing.T) {
		image := reg.addr + "/farm-test/regdown:push-back"
		reg.stop()
		p := buildPush(t, image)
		relWaitFor(t, p, p.stderr, "retrying in", 2*time.Minute)
		reg.start(t)
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("exit %d: the registry came back within the retries", code)
		}
		r := run(t, nil, "farm-manifest --tls-verify=false < "+p.stdout)
		if r.code != 0 {
			t.Fatalf("farm-manifest exit %d", r.code)
		}
		if out, err := relSkopeoRaw(image); err != nil || strings.Count(out, `"digest"`) != 2 {
			t.Fatalf("want a list of 2 in the registry, got (err %v): %s", err, out)
		}
	})

	// The images are in the registry; then it goes down for the list.
	pushed := func(t *testing.T, image string) string {
		p := buildPush(t, image)
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("farm-build --push exit %d", code)
		}
		return p.stdout
	}

	t.Run("list/stays-down", func(t *testing.T) {
		image := reg.addr + "/farm-test/regdown:list"
		images := pushed(t, image)
		reg.stop()
		defer reg.start(t)
		p := relStart(t, nil, relOpen(t, images), "farm-manifest", "--tls-verify=false")
		code := p.wait(t, 2*time.Minute)
		stderr := relRead(p.stderr)
		if code != 1 || len(p.records(t)) != 0 {
			t.Errorf("exit %d and records %q; want 1 and none", code, relRead(p.stdout))
		}
		if !strings.Contains(stderr, "farm-manifest: ") || !strings.Contains(stderr, reg.addr) || !strings.Contains(stderr, "connection refused") {
			t.Errorf("the error should name the registry and say why")
		}
		if n := retries(stderr); n < 3 || time.Since(p.started) < 6*time.Second {
			t.Errorf("want 3 retries 2s apart, got %d in %s", n, time.Since(p.started))
		}
		reg.start(t)
		noList(t, image)
		// What the nodes pushed stays: a re-run only writes the list.
		if _, err := relSkopeoRaw(image + "-linux-arm64"); err != nil {
			t.Errorf("the pushed images should still be in the registry: %v", err)
		}
	})

	t.Run("list/comes-back", func(t *testing.T) {
		image := reg.addr + "/farm-test/regdown:list-back"
		images := pushed(t, image)
		reg.stop()
		p := relStart(t, nil, relOpen(t, images), "farm-manifest", "--tls-verify=false")
		relWaitFor(t, p, p.stderr, "retrying in", time.Minute)
		reg.start(t)
		if code := p.wait(t, time.Minute); code != 0 {
			t.Fatalf("exit %d: the registry came back within the retries", code)
		}
		if out, err := relSkopeoRaw(image); err != nil || strings.Count(out, `"digest"`) != 2 {
			t.Fatalf("want a list of 2 in the registry, got (err %v): %s", err, out)
		}
	})
}

// ------------------------------------------------------------------ signals

var relSignals = []struct {
	sig  syscall.Signal
	code int
}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}}

// relContextPrefix is the first MiB of the compressed context farm-build
// sends for dir (buildctx makes the same bytes for the same tree).
func relContextPrefix(t *testing.T, dir string) []byte {
	t.Helper()
	w := &relPrefixWriter{max: 1 << 20}
	buildctx.WriteTo(context.Background(), w, buildctx.Options{Dir: dir})
	if len(w.buf) < w.max {
		t.Fatalf("the context of %s is smaller than 1 MiB", dir)
	}
	return w.buf
}

type relPrefixWriter struct {
	buf []byte
	max int
}

func (w *relPrefixWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.max-len(w.buf))
	w.buf = append(w.buf, p[:n]...)
	if len(w.buf) == w.max {
		return n, io.ErrShortWrite // enough: stop the walk
	}
	return n, nil
}

// relPartialUploads lists the nodes' upload directories whose tarBall
// starts with prefix: uploads of this very context.
func relPartialUploads(t *testing.T, prefix []byte) []string {
	t.Helper()
	var ours []string
	balls, _ := filepath.Glob("/var/tmp/libpod_builder*/tarBall")
	for _, ball := range balls {
		f, err := os.Open(ball)
		if err != nil {
			continue
		}
		head := make([]byte, len(prefix))
		n, _ := io.ReadFull(f, head)
		f.Close()
		if n == len(prefix) && bytes.Equal(head, prefix) {
			ours = append(ours, filepath.Dir(ball))
		}
	}
	return ours
}

// Ctrl-C or SIGTERM while the context is still on its way to the nodes:
// exit 130/143, no build starts, and the nodes keep nothing of the upload.
func TestInterruptDuringUpload(t *testing.T) {
	blob := "blob-" + relNonce()
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	relRandomFile(t, filepath.Join(ctxDir, blob), 300_000_000)
	plan := relPlan(t, "linux/amd64,linux/arm64")
	prefix := relContextPrefix(t, ctxDir)
	for _, s := range relSignals {
		t.Run(s.sig.String(), func(t *testing.T) {
			tag := "localhost/farm-test/int-upload:" + strconv.Itoa(s.code)
			p := relStart(t, nil, relOpen(t, plan), "farm-build", "--log-level", "debug", "-t", tag,
				"--build-arg", "NONCE="+relNonce(), ctxDir)
			relWaitFor(t, p, p.stderr, "build context ready", time.Minute)
			deadline := time.Now().Add(30 * time.Second)
			for len(relJobIDs(relRead(p.stderr))) < 2 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // well into the 300 MB
			if stderr := relRead(p.stderr); strings.Contains(stderr, "STEP ") || len(relJobIDs(stderr)) < 2 {
				t.Fatalf("not uploading at the signal (both jobs started, no build step yet):\n%s", stderr)
			}
			p.cmd.Process.Signal(s.sig)
			if code := p.wait(t, time.Minute); code != s.code {
				t.Fatalf("exit %d, want %d", code, s.code)
			}
			stderr := relRead(p.stderr)
			if len(imagesOf(p.records(t))) != 0 {
				t.Errorf("an interrupted run must not report images")
			}
			if strings.Contains(stderr, "STEP ") {
				t.Errorf("a build started after the signal")
			}
			relNoJobLeft(t, relJobIDs(stderr), 10*time.Second)
			// A node's service receives the context into $TMPDIR (/var/tmp
			// here) /libpod_builder*/tarBall, then unpacks it next to it in
			// build/. Nothing may be unpacked; what podman 4.x keeps of the
			// half-received tarBall (it registers its clean-up only after a
			// complete upload) is a known leftover: docs/reliability.md.
			if left, _ := filepath.Glob("/var/tmp/libpod_builder*/build/" + blob); len(left) != 0 {
				t.Errorf("a node unpacked the interrupted context: %v", left)
			}
			for _, dir := range relPartialUploads(t, prefix) {
				if fileExists(filepath.Join(dir, "build")) {
					t.Errorf("a node unpacked the interrupted context in %s", dir)
				}
				fi, _ := os.Stat(filepath.Join(dir, "tarBall"))
				t.Logf("left behind by the node's podman: %s/tarBall (%d bytes, a partial upload); removed", dir, fi.Size())
				os.RemoveAll(dir)
			}
			if where := relFindImage(t, "", tag+"-linux-amd64"); len(where) != 0 {
				t.Errorf("images of the interrupted run: %v", where)
			}
		})
	}
}

// Ctrl-C or SIGTERM while an image comes back, with --cleanup: exit
// 130/143, the image is neither half in local storage nor left on the node,
// nothing runs on the node, and the transfer registry (if any) is stopped.
func TestInterruptDuringPullBack(t *testing.T) {
	ctxDir := relContext(t, map[string]string{"Containerfile": bigImageFile})
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	for _, mode := range []string{"archive", "registry"} {
		for _, s := range relSignals {
			t.Run(mode+"/"+s.sig.String(), func(t *testing.T) {
				tag := fmt.Sprintf("localhost/farm-test/int-pull-%s:%d", mode, s.code)
				t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64") })
				sock, tmpdir := filepath.Join(t.TempDir(), "podman.sock"), t.TempDir()
				svc := relLocalService(t, sock, tmpdir)
				p := relStart(t, []string{"CONTAINER_HOST=unix://" + sock}, relOpen(t, plan), "farm-build", "--log-level", "debug",
					"-t", tag, "--cleanup", "--transfer", mode, "--build-arg", "NONCE="+relNonce(), ctxDir)
				relMidTransfer(t, p, svc)
				p.cmd.Process.Signal(s.sig)
				if code := p.wait(t, time.Minute); code != s.code {
					t.Fatalf("exit %d, want %d", code, s.code)
				}
				stderr := relRead(p.stderr)
				if strings.Contains(stderr, "done: ") || len(imagesOf(p.records(t))) != 0 {
					t.Fatalf("the transfer finished before the signal; the test needs a bigger image")
				}
				ids := relBuiltIDs(stderr)
				if len(ids) != 1 {
					t.Fatalf("want the image id in the build log, got %v", ids)
				}
				if where := relFindImage(t, ids[0], tag+"-linux-amd64"); len(where) != 0 {
					t.Errorf("the interrupted image is still stored: %v", where)
				}
				relNoJobLeft(t, relJobIDs(stderr), 10*time.Second)
				if hub := regexp.MustCompile(`transfer registry started.* pid=(\d+)`).FindStringSubmatch(stderr); hub != nil {
					relGone(t, hub[1], 10*time.Second)
				}
				// The local service (alive) dropped what it had received.
				deadline := time.Now().Add(10 * time.Second)
				for {
					left, _ := os.ReadDir(tmpdir)
					if len(left) == 0 {
						break
					}
					if time.Now().After(deadline) {
						var names []string
						for _, e := range left {
							names = append(names, e.Name())
						}
						t.Fatalf("the local service kept temporary files of the interrupted transfer: %v", names)
					}
					time.Sleep(200 * time.Millisecond)
				}
			})
		}
	}
}

// relListLock holds farm-manifest's per-name lock (lib/manifest: flock on
// DIR/farm-manifest-locks/<first 8 bytes of sha256(name), hex>.lock) as
// another farm-manifest would while it writes the list.
func relListLock(t *testing.T, tmpdir, name string) (path string, unlock func()) {
	t.Helper()
	dir := filepath.Join(tmpdir, "farm-manifest-locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(name))
	path = filepath.Join(dir, hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() { once.Do(func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }) }
	t.Cleanup(unlock)
	return path, unlock
}

// relHasOpen waits until process pid has path open.
func relHasOpen(t *testing.T, p *relProc, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
		for _, fd := range fds {
			if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.cmd.Process.Pid, fd.Name())); target == path {
				return
			}
		}
		if !p.running() {
			t.Fatalf("%s exited (%d) without waiting for the lock:\n%s", p.cmd.Path, p.code, relRead(p.stderr))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not open %s within %s", p.cmd.Path, path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ctrl-C or SIGTERM while farm-manifest waits for another writer of the
// same list: exit 130/143 and the list as the other left it.
func TestInterruptWhileListLocked(t *testing.T) {
	name := "localhost/farm-test/locked:" + relNonce()
	relRemoveLocal(t, name, name+"-linux-amd64", name+"-linux-arm64")
	t.Cleanup(func() { relRemoveOnNodes(t, name+"-linux-amd64", name+"-linux-arm64") })
	images := filepath.Join(t.TempDir(), "images.jsonl")
	plan := relPlan(t, "linux/amd64,linux/arm64")
	if r := run(t, nil, fmt.Sprintf("set -o pipefail; farm-build -t %s test/lab/testdata/targetarch < %s | tee %s | farm-manifest", name, plan, images)); r.code != 0 {
		t.Fatalf("making the first list: exit %d", r.code)
	}
	before := podman(t, "manifest", "inspect", name)
	tmpdir := t.TempDir()
	for _, s := range relSignals {
		t.Run(s.sig.String(), func(t *testing.T) {
			lock, _ := relListLock(t, tmpdir, name)
			p := relStart(t, []string{"TMPDIR=" + tmpdir}, relOpen(t, images), "farm-manifest")
			relHasOpen(t, p, lock, time.Minute)
			time.Sleep(300 * time.Millisecond)
			if !p.running() {
				t.Fatalf("farm-manifest did not wait for the lock")
			}
			p.cmd.Process.Signal(s.sig)
			if code := p.wait(t, 20*time.Second); code != s.code {
				t.Fatalf("exit %d, want %d", code, s.code)
			}
			if out := relRead(p.stdout); out != "" {
				t.Errorf("an interrupted farm-manifest wrote %q", out)
			}
			if after := podman(t, "manifest", "inspect", name); after != before {
				t.Errorf("the list changed:\nbefore %s\nafter %s", before, after)
			}
		})
	}
	// Without the lock held, the same command goes through: it was the
	// lock it waited for.
	r := run(t, []string{"TMPDIR=" + tmpdir}, "farm-manifest < "+images)
	if r.code != 0 || len(decode(t, r.stdout)) != 1 {
		t.Fatalf("farm-manifest without the lock: exit %d", r.code)
	}
}

// ------------------------------------------------------------------ cleanup

// --cleanup removes each built image from its node once it is local; without
// it the image stays on the node (for the next run's cache).
func TestCleanupRemovesImagesFromNodes(t *testing.T) {
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	plan := relPlan(t, "linux/amd64,linux/arm64")
	for _, cleanup := range []bool{true, false} {
		t.Run(fmt.Sprintf("cleanup=%v", cleanup), func(t *testing.T) {
			tag := fmt.Sprintf("localhost/farm-test/cleanup-%v:%s", cleanup, relNonce())
			args := []string{"-t", tag, "--build-arg", "NONCE=" + relNonce(), ctxDir}
			if cleanup {
				args = append([]string{"--cleanup"}, args...)
			}
			t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64", tag+"-linux-arm64") })
			relRemoveLocal(t, tag+"-linux-amd64", tag+"-linux-arm64")
			p := relStart(t, nil, relOpen(t, plan), "farm-build", args...)
			if code := p.wait(t, 3*time.Minute); code != 0 {
				t.Fatalf("exit %d", code)
			}
			imgs := imagesOf(p.records(t))
			if len(imgs) != 2 {
				t.Fatalf("want 2 images: %s", relRead(p.stdout))
			}
			for _, img := range imgs {
				nodes := relLabNodes(t)
				var onNode, local bool
				for _, i := range relImages(t, nodes[img.Node]) {
					onNode = onNode || i.ID == img.ID || contains(i.Names, img.Ref)
				}
				for _, i := range relImages(t, "") {
					local = local || i.ID == img.ID && contains(i.Names, img.Ref)
				}
				if !local {
					t.Errorf("%s is not in local storage as %s", img.ID[:12], img.Ref)
				}
				if onNode == cleanup {
					t.Errorf("--cleanup=%v, yet %s on %s: stored there %v", cleanup, img.ID[:12], img.Node, onNode)
				}
			}
		})
	}
}

// docs/reliability.md is the table of faults: every test it names exists,
// and every test of the fault suite has a row.
func TestReliabilityTableNamesRealTests(t *testing.T) {
	root := repo(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "reliability.md"))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(root, "test", "lab", "*_test.go"))
	more, _ := filepath.Glob(filepath.Join(root, "test", "*_test.go"))
	files = append(files, more...)
	// A fault that needs no node (a deadlock in the terminal view) is
	// tested next to its code.
	more, _ = filepath.Glob(filepath.Join(root, "lib", "*", "*_test.go"))
	files = append(files, more...)
	for _, f := range files {
		src, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`).FindAllSubmatch(src, -1) {
			defined[string(m[1])] = filepath.Base(f)
		}
	}
	named := map[string]bool{}
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| Fault") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 4 {
			t.Errorf("a row of the table needs 4 cells (fault, what you see, what is left behind, test): %s", line)
			continue
		}
		rows++
		tests := regexp.MustCompile(`Test\w+`).FindAllString(cells[3], -1)
		if len(tests) == 0 {
			t.Errorf("a row names no test: %s", line)
		}
		for _, name := range tests {
			named[name] = true
			if _, ok := defined[name]; !ok {
				t.Errorf("docs/reliability.md names %s, which neither test/lab, test/ nor lib/*/ defines", name)
			}
		}
	}
	if rows < 20 {
		t.Errorf("only %d rows in the table of docs/reliability.md", rows)
	}
	for name, file := range defined {
		switch file {
		case "faults_test.go", "badinput_test.go", "secrets_test.go", "concurrency_test.go", "shared_test.go":
			if !named[name] && name != "TestReliabilityTableNamesRealTests" {
				t.Errorf("%s (%s) has no row in docs/reliability.md", name, file)
			}
		}
	}
}
