//go:build lab

// Package lab holds the tests that run farm's real binaries against the lab
// farm (scripts/farm-lab up): real podman services reached over real SSH.
// `make lab-test` builds the binaries and brings the lab up first.
package lab

import (
	"bufio"
	"bytes"
	"context"
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

	"github.com/farm-build/farm/lib/record"
)

var (
	rootOnce sync.Once
	rootDir  string
	labVars  map[string]string
)

// repo returns the repository root and the lab's variables (lab.env).
func repo(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			panic("not in a git checkout: " + err.Error())
		}
		rootDir = strings.TrimSpace(string(out))
		labVars = readEnv(filepath.Join(labDir(), "lab.env"))
	})
	if labVars == nil {
		t.Fatalf("the lab is not up (no %s/lab.env): run `make lab-up`", labDir())
	}
	for _, bin := range []string{"farm-nodes", "farm-plan", "farm-build", "farm-manifest"} {
		if _, err := os.Stat(filepath.Join(rootDir, "bin", bin)); err != nil {
			t.Fatalf("%v: run `make build` (make lab-test does)", err)
		}
	}
	return rootDir
}

func labDir() string {
	if d := os.Getenv("FARM_LAB_DIR"); d != "" {
		return d
	}
	return "/var/lib/farm-lab"
}

func readEnv(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.HasPrefix(k, "#") {
			vars[strings.TrimPrefix(k, "export ")] = strings.Trim(v, `"'`)
		}
	}
	return vars
}

func labVar(t *testing.T, key string) string {
	t.Helper()
	repo(t)
	v, ok := labVars[key]
	if !ok {
		t.Fatalf("lab.env has no %s", key)
	}
	return v
}

// result of one command.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// run runs a shell pipeline from the repository root with bin/ first on
// PATH, and returns what it printed and its exit code (of the last stage).
func run(t *testing.T, env []string, script string) result {
	t.Helper()
	root := repo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("running %q: %v", script, err)
	}
	t.Logf("$ %s\n(exit %d, %s)\nstderr:\n%s", script, r.code, r.elapsed.Round(time.Millisecond), r.stderr)
	return r
}

// lab runs scripts/farm-lab with the arguments and fails the test if it fails.
func lab(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo(t), "scripts", "farm-lab"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/farm-lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// labDown stops a node's podman service (part "node") or its sshd ("sshd")
// for the rest of the test. The start is registered before the stop, so the
// node comes back even when stopping it fails (it was down already): one
// failed test must not leave the lab short of a node for every test after.
func labDown(t *testing.T, part, node string) {
	t.Helper()
	t.Cleanup(func() { lab(t, part+"-start", node) })
	lab(t, part+"-stop", node)
}

// decode parses a record stream and fails the test on any bad line, and on
// a record after an end record. The end record is not returned: ended
// says whether the stream has one.
func decode(t *testing.T, stream string) []record.Record {
	t.Helper()
	var out []record.Record
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Buffer(nil, record.MaxLine)
	end := false
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		r, err := record.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("bad record %q: %v", sc.Text(), err)
		}
		if end {
			t.Fatalf("a record after the end record: %q", sc.Text())
		}
		if _, end = r.(*record.End); !end {
			out = append(out, r)
		}
	}
	return out
}

// ended reports whether a record stream is complete: its last record is an
// end record.
func ended(stream string) bool {
	lines := strings.Split(strings.TrimSpace(stream), "\n")
	r, err := record.Decode([]byte(lines[len(lines)-1]))
	_, ok := r.(*record.End)
	return err == nil && ok
}

func nodesOf(recs []record.Record) map[string]*record.Node {
	m := map[string]*record.Node{}
	for _, r := range recs {
		if n, ok := r.(*record.Node); ok {
			m[n.Name] = n
		}
	}
	return m
}

func imagesOf(recs []record.Record) map[string]*record.Image {
	m := map[string]*record.Image{}
	for _, r := range recs {
		if i, ok := r.(*record.Image); ok {
			m[i.Platform] = i
		}
	}
	return m
}

func errorsOf(recs []record.Record) []*record.Error {
	var out []*record.Error
	for _, r := range recs {
		if e, ok := r.(*record.Error); ok {
			out = append(out, e)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// podman runs the local podman CLI.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// psMatches lists processes on this machine (where every lab node runs)
// whose command line contains pattern.
func psMatches(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("ps", "-eo", "pid,args").Output()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	var hits []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, pattern) && !strings.Contains(line, "ps -eo") {
			hits = append(hits, strings.TrimSpace(line))
		}
	}
	return hits
}

// ------------------------------------------------------------ rel helpers
//
// The helpers prefixed "rel" came with the fault suite (faults_test.go) and
// serve most of the suite's files: background stages, build contexts, the
// lab's storage, a registry of a test's own.

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
