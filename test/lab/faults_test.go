//go:build lab

package lab

// The fault suite (issue #6): each test breaks one thing on purpose (a node,
// the network, the local podman service, the registry, the user's patience)
// and checks what the user sees and what is left behind. docs/reliability.md
// has the table; every row names its test. The "rel" helpers the suite
// shares with the other files are in lab_test.go; those here serve only
// this file's tests.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
	labDown(t, "sshd", "lab-2")

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

// ------------------------------------------------------------- registry down

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
// starts with prefix once the run's mark (the gzip header's comment) is
// taken out: uploads of this very context.
func relPartialUploads(t *testing.T, prefix []byte) []string {
	t.Helper()
	var ours []string
	balls, _ := filepath.Glob("/var/tmp/libpod_builder*/tarBall")
	for _, ball := range balls {
		f, err := os.Open(ball)
		if err != nil {
			continue
		}
		head := make([]byte, len(prefix)+64)
		n, _ := io.ReadFull(f, head)
		f.Close()
		head = head[:n]
		if end := bytes.IndexByte(head[min(n, 10):], 0); n > 10 && head[3] == 0x10 && end >= 0 {
			head = append(append([]byte{}, head[:10]...), head[10+end+1:]...)
			head[3] = 0
		}
		if len(head) >= len(prefix) && bytes.Equal(head[:len(prefix)], prefix) {
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

// Ctrl-C or SIGTERM to farm-nodes while it probes, once a tunnel's socket
// exists: exit 130/143 and no /tmp/farm-tunnel-* directory (socket and all)
// is left in its $TMPDIR. The probes ran on after the stage exited, and
// their clean-up with them, until the stage waited for them.
func TestInterruptedProbeLeavesNoTunnel(t *testing.T) {
	for _, s := range relSignals {
		t.Run(s.sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			p := relStart(t, []string{"TMPDIR=" + tmp}, nil, "farm-nodes", "--farm", "lab", "--format", "json", "--timeout", "60s")
			deadline := time.Now().Add(30 * time.Second)
			for {
				socks, _ := filepath.Glob(filepath.Join(tmp, "farm-tunnel-*", "podman.sock"))
				if len(socks) > 0 {
					break
				}
				if !p.running() || time.Now().After(deadline) {
					t.Fatalf("no tunnel socket appeared in %s while farm-nodes ran:\n%s", tmp, relRead(p.stderr))
				}
				time.Sleep(5 * time.Millisecond)
			}
			p.cmd.Process.Signal(s.sig)
			if code := p.wait(t, 30*time.Second); code != s.code {
				t.Fatalf("exit %d, want %d", code, s.code)
			}
			if left, _ := filepath.Glob(filepath.Join(tmp, "farm-tunnel-*")); len(left) != 0 {
				t.Errorf("the interrupted farm-nodes left its tunnels: %v", left)
			}
		})
	}
}

// relFirstRecords is the first k record lines of a stream, as a stage
// killed after writing them leaves it (no end record).
func relFirstRecords(t *testing.T, stream string, k int) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(stream, "\n") {
		if strings.TrimSpace(line) == "" || strings.Contains(line, `"kind":"end"`) {
			continue
		}
		out = append(out, line)
	}
	if k > len(out) {
		t.Fatalf("want %d records, the stream has %d", k, len(out))
	}
	return strings.Join(out[:k], "\n")
}

// SIGKILL of each stage after each of its records: the next stage reads
// exactly what the killed one wrote. Whatever the position, it acts on
// nothing (no plan, no build, no list), exits 1 and says so; another run's
// list is untouched.
func TestSIGKILLAtEveryRecordPosition(t *testing.T) {
	dir := t.TempDir()
	nonce := relNonce()
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	tag := "localhost/farm-test/kill-pos:" + nonce
	other := "localhost/farm-test/kill-pos-other:" + nonce
	relRemoveLocal(t, other)
	t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64", tag+"-linux-arm64") })
	stages := run(t, nil, fmt.Sprintf("set -o pipefail; farm-nodes --farm lab --timeout 60s | tee %s/nodes | farm-plan --platforms linux/amd64,linux/arm64 | tee %s/plan "+
		"| farm-build -t %s --build-arg NONCE=%s %s | tee %s/images | farm-manifest %s", dir, dir, tag, nonce, ctxDir, dir, other))
	if stages.code != 0 {
		t.Fatalf("the whole pipeline: exit %d", stages.code)
	}
	otherList := podman(t, "manifest", "inspect", other)

	for _, c := range []struct {
		stage, output, next string
		records             int
		nothing             func(t *testing.T, r result)
	}{
		{"farm-nodes", "nodes", "farm-plan --platforms linux/amd64,linux/arm64", 3, func(t *testing.T, r result) {
			for _, rec := range decode(t, r.stdout) {
				if _, ok := rec.(*record.Job); ok {
					t.Errorf("farm-plan planned from a cut stream: %+v", rec)
				}
			}
		}},
		{"farm-plan", "plan", "farm-build --progress plain -t " + tag + "-cut --build-arg NONCE=" + nonce + " " + ctxDir, 2, func(t *testing.T, r result) {
			if strings.Contains(r.stderr, "STEP ") || len(imagesOf(decode(t, r.stdout))) != 0 {
				t.Errorf("farm-build built from a cut plan")
			}
		}},
		{"farm-build", "images", "farm-manifest " + tag + "-cut", 2, func(t *testing.T, r result) {
			if manifestOf(decode(t, r.stdout)) != nil || exec.Command("podman", "manifest", "exists", tag+"-cut").Run() == nil {
				t.Errorf("farm-manifest made a list from a cut stream")
			}
		}},
	} {
		full := relRead(filepath.Join(dir, c.output))
		for k := 0; k <= c.records; k++ {
			t.Run(fmt.Sprintf("%s after %d records", c.stage, k), func(t *testing.T) {
				cut := relWriteFile(t, filepath.Join(t.TempDir(), "cut"), relFirstRecords(t, full, k))
				r := run(t, nil, fmt.Sprintf("%s < %s", c.next, cut))
				if r.code != 1 {
					t.Errorf("exit %d, want 1", r.code)
				}
				if k > 0 && !strings.Contains(r.stderr, "without an end record") {
					t.Errorf("the next stage did not say its input was cut:\n%s", r.stderr)
				}
				c.nothing(t, r)
			})
		}
	}
	if now := podman(t, "manifest", "inspect", other); now != otherList {
		t.Errorf("another run's list changed:\n%s\n%s", otherList, now)
	}
}

// relSlowArchFile sleeps in the RUN step of the platforms named in SLOW.
const relSlowArchFile = `ARG TARGETARCH
FROM localhost/busybox:${TARGETARCH}
ARG TARGETARCH
ARG NONCE
ARG SLOW
RUN echo "$NONCE" > /nonce && case "$SLOW" in *"$TARGETARCH"*) echo "sleeping-$NONCE-$TARGETARCH"; sleep 300;; esac
`

// A real SIGKILL of farm-build before its first image record (both
// platforms building) and after it (amd64 back, arm64 building on lab-2):
// farm-manifest makes no list of what it wrote, and the next run on the
// nodes stops the dead run's RUN steps and removes its working containers;
// another run's list is untouched.
func TestSIGKILLedBuildLeavesNoListAndTheNextRunCleansUp(t *testing.T) {
	ctxDir := relContext(t, map[string]string{"Containerfile": relSlowArchFile})
	plan := relPins(t, "linux/amd64=lab-1", "linux/arm64=lab-2")
	other := "localhost/farm-test/killed-other:" + relNonce()
	relRemoveLocal(t, other)
	if r := run(t, nil, fmt.Sprintf("set -o pipefail; farm-build -t %s --build-arg NONCE=%s test/lab/testdata/targetarch < %s | farm-manifest", other, relNonce(), plan)); r.code != 0 {
		t.Fatalf("another run's list: exit %d", r.code)
	}
	otherList := podman(t, "manifest", "inspect", other)
	for _, c := range []struct {
		records int
		slow    string
	}{{0, "amd64,arm64"}, {1, "arm64"}} {
		t.Run(fmt.Sprintf("after %d image records", c.records), func(t *testing.T) {
			nonce := relNonce()
			tag := "localhost/farm-test/killed:" + nonce
			t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64", tag+"-next-linux-amd64", tag+"-next-linux-arm64") })
			p := relStart(t, nil, relOpen(t, plan), "farm-build", "--progress", "plain", "--log-level", "debug", "-t", tag,
				"--build-arg", "NONCE="+nonce, "--build-arg", "SLOW="+c.slow, ctxDir)
			relWaitFor(t, p, p.stderr, "sleeping-"+nonce+"-arm64", 3*time.Minute)
			if c.records == 0 {
				relWaitFor(t, p, p.stderr, "sleeping-"+nonce+"-amd64", 3*time.Minute)
			} else {
				relWaitFor(t, p, p.stdout, `"kind":"image"`, 3*time.Minute)
			}
			dead := relRunLine.FindStringSubmatch(relRead(p.stderr))[1]
			p.cmd.Process.Kill()
			p.wait(t, time.Minute)
			if n := len(imagesOf(p.records(t))); n != c.records {
				t.Fatalf("the killed run wrote %d image records, the test wants %d", n, c.records)
			}
			r := run(t, nil, fmt.Sprintf("farm-manifest %s < %s", tag, p.stdout))
			if r.code != 1 || exec.Command("podman", "manifest", "exists", tag).Run() == nil {
				t.Errorf("farm-manifest made a list from a killed farm-build's output (exit %d)", r.code)
			}
			if len(relRunProcs(dead)) == 0 {
				t.Fatalf("the test needs the killed run's RUN steps still running")
			}
			next := run(t, nil, fmt.Sprintf("farm-build --progress plain -t %s-next --build-arg NONCE=%s --build-arg SLOW=none %s < %s", tag, nonce, ctxDir, plan))
			t.Cleanup(func() { relRemoveLocal(t, tag+"-next-linux-amd64", tag+"-next-linux-arm64") })
			if next.code != 0 || !regexp.MustCompile(`cleaned up after a dead run.* run=`+dead).MatchString(next.stderr) {
				t.Errorf("the next run (exit %d) did not clean up after the killed run %s", next.code, dead)
			}
			if left := relRunProcs(dead); len(left) != 0 {
				t.Errorf("the killed run's RUN steps still run: %v", left)
			}
			for _, node := range []string{"lab-1", "lab-2"} {
				for _, ctr := range relWorkingContainersOf(t, node, dead) {
					t.Errorf("the killed run's working container %s is left on %s", ctr, node)
				}
			}
		})
	}
	if now := podman(t, "manifest", "inspect", other); now != otherList {
		t.Errorf("another run's list changed")
	}
}

// relRunProcs lists the processes in the cgroups of farm run run's jobs
// (rootful lab nodes: /farm-RUNJOB under each hierarchy).
func relRunProcs(run string) []string {
	files, _ := filepath.Glob("/sys/fs/cgroup/pids/farm-" + run + "*/cgroup.procs")
	var out []string
	for _, f := range files {
		data, _ := os.ReadFile(f)
		out = append(out, strings.Fields(string(data))...)
	}
	return out
}

// relWorkingContainersOf lists the working containers of farm run run on a
// lab node (by the job's host entry in buildah.json).
func relWorkingContainersOf(t *testing.T, node, run string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(labDir(), node, "root", "overlay-containers", "*", "userdata", "buildah.json"))
	var out []string
	for _, f := range files {
		if data, _ := os.ReadFile(f); bytes.Contains(data, []byte("farm-"+run)) {
			out = append(out, filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return out
}

// farm-nodes SIGKILLed while it probes leaves its tunnels' directories
// (nothing runs to remove them); the next run that opens a tunnel removes
// them, and leaves a live tunnel (a socket someone listens on) alone.
func TestSIGKILLedProbeTunnelsRemovedByTheNextRun(t *testing.T) {
	tmp := t.TempDir()
	liveDir := filepath.Join(tmp, "farm-tunnel-999999999-live")
	os.Mkdir(liveDir, 0o700)
	live, err := net.Listen("unix", filepath.Join(liveDir, "podman.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	p := relStart(t, []string{"TMPDIR=" + tmp}, nil, "farm-nodes", "--farm", "lab", "--format", "json", "--timeout", "60s")
	deadline := time.Now().Add(30 * time.Second)
	var left []string
	for len(left) == 0 {
		left, _ = filepath.Glob(filepath.Join(tmp, "farm-tunnel-*[0-9]", "podman.sock"))
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("no tunnel socket appeared while farm-nodes ran:\n%s", relRead(p.stderr))
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.wait(t, 30*time.Second)
	left, _ = filepath.Glob(filepath.Join(tmp, "farm-tunnel-*[0-9]"))
	if len(left) == 0 {
		t.Fatalf("the killed farm-nodes left no tunnel: nothing to test")
	}
	r := run(t, []string{"TMPDIR=" + tmp}, "farm-nodes --farm lab --format json --timeout 60s")
	if r.code != 0 {
		t.Fatalf("the next farm-nodes: exit %d", r.code)
	}
	if still, _ := filepath.Glob(filepath.Join(tmp, "farm-tunnel-*[0-9]")); len(still) != 0 {
		t.Errorf("the dead run's tunnels are left: %v (were %v)", still, left)
	}
	if !fileExists(filepath.Join(liveDir, "podman.sock")) {
		t.Errorf("the next run removed a live tunnel")
	}
}
