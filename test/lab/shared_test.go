//go:build lab

package lab

// A farm shared by many runs: what one run does must never undo another's.
// Each test here has its row in docs/reliability.md.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// relPins pins platforms to nodes (PLATFORM=NODE ...) and saves the plan.
func relPins(t *testing.T, pins ...string) string {
	t.Helper()
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	r := run(t, nil, fmt.Sprintf("set -o pipefail; farm-nodes --farm lab --timeout 60s | scripts/examples/pin-platform.sh %s > %s", strings.Join(pins, " "), plan))
	if r.code != 0 {
		t.Fatalf("planning %v: exit %d", pins, r.code)
	}
	return plan
}

// relSplitContext builds amd64 at once and arm64 only after a long sleep,
// the same image for the same NONCE on the same node (layer cache).
const relSplitContainerfile = `ARG TARGETARCH
FROM localhost/busybox:${TARGETARCH}
ARG TARGETARCH
ARG NONCE
RUN echo "$NONCE" > /nonce && if [ "$TARGETARCH" = arm64 ]; then echo "sleeping-$NONCE"; sleep 300; fi
`

// Run A brings an image back; run B, same context and args but another
// tag, finds that very image in local storage ("nothing to transfer"),
// tags it and makes its list; then A is interrupted. A's clean-up takes
// back A's own name only: B's image and list stay whole and push.
func TestInterruptedRunKeepsAnotherRunsImage(t *testing.T) {
	nonce := relNonce()
	ctxDir := relContext(t, map[string]string{"Containerfile": relSplitContainerfile})
	a, b := "localhost/farm-test/own-a:"+nonce, "localhost/farm-test/own-b:"+nonce
	relRemoveLocal(t, b, b+"-linux-amd64", a+"-linux-amd64", a+"-linux-arm64")
	t.Cleanup(func() { relRemoveOnNodes(t, a+"-linux-amd64", a+"-linux-arm64", b+"-linux-amd64") })

	planA := relPins(t, "linux/amd64=lab-1", "linux/arm64=lab-2")
	runA := relStart(t, nil, relOpen(t, planA), "farm-build", "--progress", "plain", "-t", a, "--build-arg", "NONCE="+nonce, ctxDir)
	relWaitFor(t, runA, runA.stderr, "in local storage as "+a+"-linux-amd64", 3*time.Minute)
	relWaitFor(t, runA, runA.stderr, "sleeping-"+nonce, 3*time.Minute)

	planB := relPins(t, "linux/amd64=lab-1")
	r := run(t, nil, fmt.Sprintf("set -o pipefail; farm-build --progress plain -t %s --build-arg NONCE=%s %s < %s | farm-manifest", b, nonce, ctxDir, planB))
	if r.code != 0 {
		t.Fatalf("run B: exit %d", r.code)
	}
	if !strings.Contains(r.stderr, "nothing to transfer") {
		t.Fatalf("run B should have found run A's image in local storage:\n%s", r.stderr)
	}

	runA.cmd.Process.Signal(syscall.SIGINT)
	if code := runA.wait(t, time.Minute); code != 130 {
		t.Fatalf("run A: exit %d, want 130", code)
	}
	// Locally; on lab-1 A's finished image stays as the next run's cache
	// (no --cleanup).
	if exec.Command("podman", "image", "exists", a+"-linux-amd64").Run() == nil {
		t.Errorf("run A's own name is left in local storage")
	}
	if out, err := exec.Command("podman", "image", "exists", b+"-linux-amd64").CombinedOutput(); err != nil {
		t.Fatalf("run A's clean-up took run B's image: %v %s", err, out)
	}
	dest := "docker://" + labVar(t, "FARM_LAB_REGISTRY") + "/farm-test/own-b:" + nonce
	if out, err := exec.Command("podman", "manifest", "push", "--all", "--tls-verify=false", b, dest).CombinedOutput(); err != nil {
		t.Fatalf("run B's list no longer pushes: %v\n%s", err, out)
	}
}

// A tag of 125 characters: TAG-os-arch would be over the 128 allowed.
// Each platform keeps a tag of its own (TAG cut short, with a hash), so no
// pull-back takes another's tag, and the list holds both platforms.
func TestLongTagKeepsEveryPlatformApart(t *testing.T) {
	nonce := relNonce()
	tag := "localhost/farm-test/longtag:" + nonce + strings.Repeat("x", 125-len(nonce))
	relRemoveLocal(t, tag)
	dir := t.TempDir()
	images := filepath.Join(dir, "images.jsonl")
	r := run(t, nil, fmt.Sprintf("set -o pipefail; farm-nodes --farm lab --timeout 60s | farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t %s --build-arg NONCE=%s test/lab/testdata/targetarch | tee %s | farm-manifest", tag, nonce, images))
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	imgs := imagesOf(decode(t, relRead(images)))
	amd, arm := imgs["linux/amd64"], imgs["linux/arm64"]
	if amd == nil || arm == nil || amd.Ref == arm.Ref || len(amd.Ref) > len(tag)+20 {
		t.Fatalf("want two images with a tag each: %+v %+v", amd, arm)
	}
	t.Cleanup(func() {
		relRemoveOnNodes(t, amd.Ref, arm.Ref)
		exec.Command("podman", "rmi", amd.Ref, arm.Ref).Run()
	})
	for _, img := range []string{amd.Ref, arm.Ref} {
		if exec.Command("podman", "image", "exists", img).Run() != nil {
			t.Errorf("%s is not in local storage", img)
		}
	}
	m := manifestOf(decode(t, r.stdout))
	if m == nil || len(m.Instances) != 2 {
		t.Fatalf("want a list of two: %+v", m)
	}
}

func manifestOf(recs []record.Record) *record.Manifest {
	for _, r := range recs {
		if m, ok := r.(*record.Manifest); ok {
			return m
		}
	}
	return nil
}

// Two and three pipelines with one tag at once, the third interrupted once
// its amd64 image took the per-platform tag, while the lists are made or
// after they are: whichever list is left, its per-platform tags name its
// very images (every member tagged, so `podman image prune` keeps them),
// it pushes with `podman manifest push --all`, and both members run.
func TestSameTagRunsLeaveOneConsistentState(t *testing.T) {
	for _, tc := range []struct {
		name       string
		third      bool // a third run, interrupted after its amd64 pull-back
		thirdAfter bool // started once the two lists are made
	}{
		{"2 runs", false, false},
		{"3 runs", true, false},
		{"2 runs then 1 interrupted", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "localhost/farm-test/sametag:" + relNonce()
			amd, arm := name+"-linux-amd64", name+"-linux-arm64"
			relRemoveLocal(t, name, amd, arm)
			t.Cleanup(func() { relRemoveOnNodes(t, amd, arm) })
			ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
			dir := t.TempDir()
			nonces := map[string]string{} // digest of an amd64 image -> its run's nonce
			var pipes []*relProc
			var outs []string
			for i := 0; i < 2; i++ {
				out := filepath.Join(dir, fmt.Sprintf("images-%d.jsonl", i))
				outs = append(outs, out)
				nonce := relNonce()
				nonces[out] = nonce
				pipes = append(pipes, relStart(t, nil, nil, "bash", "-c", fmt.Sprintf("set -o pipefail; farm-nodes --farm lab --timeout 60s | farm-plan --platforms linux/amd64,linux/arm64 "+
					"| farm-build -t %s --build-arg NONCE=%s %s | tee %s | farm-manifest", name, nonce, ctxDir, out)))
			}
			waitPipes := func() {
				for i, p := range pipes {
					if code := p.wait(t, 5*time.Minute); code != 0 {
						t.Fatalf("pipeline %d: exit %d", i, code)
					}
				}
			}
			if tc.thirdAfter {
				waitPipes()
			}
			if tc.third {
				split := relContext(t, map[string]string{"Containerfile": relSplitContainerfile})
				nonce := relNonce()
				third := relStart(t, nil, relOpen(t, relPins(t, "linux/amd64=lab-3", "linux/arm64=lab-3")), "farm-build", "--progress", "plain",
					"-t", name, "--build-arg", "NONCE="+nonce, split)
				relWaitFor(t, third, third.stderr, "in local storage as "+amd, 4*time.Minute)
				relWaitFor(t, third, third.stderr, "sleeping-"+nonce, 4*time.Minute)
				third.cmd.Process.Signal(syscall.SIGINT)
				if code := third.wait(t, time.Minute); code != 130 {
					t.Fatalf("the interrupted run: exit %d, want 130", code)
				}
			}
			if !tc.thirdAfter {
				waitPipes()
			}
			list := relListDigests(t, name)
			var winner string
			for _, out := range outs {
				if relSame(list, relDigestsOf(imagesOf(decode(t, relRead(out))))) {
					winner = out
				}
			}
			if winner == "" {
				t.Fatalf("the list %v is no pipeline's set of images", list)
			}
			for plat, ref := range map[string]string{"linux/amd64": amd, "linux/arm64": arm} {
				if d := podman(t, "image", "inspect", "--format", "{{.Digest}}", ref); d != list[plat] {
					t.Errorf("%s is %s, but the list's %s member is %s: tags and list of different runs", ref, d, plat, list[plat])
				}
				out := strings.Fields(podman(t, "run", "--rm", "--pull=never", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", ref))
				if len(out) == 0 || out[len(out)-1] != nonces[winner] {
					t.Errorf("%s says %q, want the list's run's nonce %s", ref, out, nonces[winner])
				}
			}
			dest := "docker://" + labVar(t, "FARM_LAB_REGISTRY") + "/farm-test/sametag:" + relNonce()
			if out, err := exec.Command("podman", "manifest", "push", "--all", "--tls-verify=false", name, dest).CombinedOutput(); err != nil {
				t.Fatalf("the list does not push: %v\n%s", err, out)
			}
		})
	}
}

// relOwnNode is a podman service of the test's own (storage, temporary
// files, process), reached as a unix:// node, with the lab's base image:
// a node the test may kill without touching the lab's. start (re)starts
// it; kill SIGKILLs the service process alone, as a crash would, leaving
// its RUN steps running.
type relOwnNode struct {
	dir, sock string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func relStartOwnNode(t *testing.T) *relOwnNode {
	t.Helper()
	// podman wants a runroot of at most 50 characters: t.TempDir is longer.
	dir, err := os.MkdirTemp("", "farm-own-")
	if err != nil {
		t.Fatal(err)
	}
	n := &relOwnNode{dir: dir}
	n.sock = filepath.Join(n.dir, "podman.sock")
	os.MkdirAll(filepath.Join(n.dir, "tmp"), 0o755)
	n.start(t)
	t.Cleanup(func() {
		n.kill()
		exec.Command("podman", "--root", filepath.Join(n.dir, "root"), "--runroot", filepath.Join(n.dir, "run"), "system", "reset", "--force").Run()
		exec.Command("umount", filepath.Join(n.dir, "root", "overlay")).Run()
		os.RemoveAll(n.dir)
	})
	save := exec.Command("podman", "save", "localhost/busybox:amd64")
	load := exec.Command("podman", "--url", "unix://"+n.sock, "load")
	load.Stdin, _ = save.StdoutPipe()
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("loading the base image into the own node: %v\n%s", err, out)
	}
	save.Wait()
	return n
}

func (n *relOwnNode) start(t *testing.T) {
	t.Helper()
	os.Remove(n.sock)
	n.cmd = exec.Command("podman", "--root", filepath.Join(n.dir, "root"), "--runroot", filepath.Join(n.dir, "run"),
		"--tmpdir", filepath.Join(n.dir, "libpod"), "system", "service", "--time=0", "unix://"+n.sock)
	n.cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(labDir(), "lab-1", "containers.conf"), "TMPDIR="+filepath.Join(n.dir, "tmp"))
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.OpenFile(filepath.Join(n.dir, "service.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(n.cmd, n.exited)
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("podman", "--url", "unix://"+n.sock, "version").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the own node's podman service did not answer:\n%s", relRead(filepath.Join(n.dir, "service.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *relOwnNode) kill() {
	n.cmd.Process.Kill()
	<-n.exited
}

// plan is one job on the node, as farm-plan would write it.
func (n *relOwnNode) plan(t *testing.T) string {
	t.Helper()
	return relWriteFile(t, filepath.Join(t.TempDir(), "plan.jsonl"),
		`{"v":1,"kind":"job","platform":"linux/amd64","node":{"v":1,"kind":"node","name":"own","uri":"unix://`+n.sock+`","native":["linux/amd64"]}}`+"\n"+`{"v":1,"kind":"end"}`+"\n")
}

// workingContainers maps the node's buildah working containers (podman ps
// --external) to the farm run each belongs to ("" for none).
func (n *relOwnNode) workingContainers(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range strings.Fields(podman(t, "--url", "unix://"+n.sock, "ps", "-a", "--external", "--no-trunc", "--format", "{{.ID}}")) {
		data, _ := os.ReadFile(filepath.Join(n.dir, "root", "overlay-containers", id, "userdata", "buildah.json"))
		run := ""
		if m := regexp.MustCompile(`farm-([0-9a-f]{12})[0-9a-f]{8}\.invalid`).FindSubmatch(data); m != nil {
			run = string(m[1])
		}
		out[id] = run
	}
	return out
}

var relRunLine = regexp.MustCompile(`msg=building .* run=([0-9a-f]{12})`)

// relRunOf waits for farm-build's run id in its debug log.
func relRunOf(t *testing.T, p *relProc) string {
	t.Helper()
	return relRunLine.FindStringSubmatch(relWaitFor(t, p, p.stderr, "msg=building", 2*time.Minute))[1]
}

const relSleepFile = `FROM localhost/busybox:amd64
ARG NONCE
ARG SLEEP
RUN echo "started-$NONCE" && sleep $SLEEP
`

// What dead runs leave on a node, a later run removes, and nothing else:
// run A's farm-build is SIGKILLed mid-build (its RUN step runs on), then
// run B's node dies mid-build (working containers stay in its storage).
// The next run L removes A's and B's working containers and stops A's
// step; while L builds, run C leaves L alone; the user's container and
// image are untouched.
func TestDeadRunsLeftoversAreRemovedByTheNextRun(t *testing.T) {
	own := relStartOwnNode(t)
	ownURL := "unix://" + own.sock
	podman(t, "--url", ownURL, "create", "--name", "users-own", "localhost/busybox:amd64", "true")
	podman(t, "--url", ownURL, "tag", "localhost/busybox:amd64", "localhost/users/own:1")
	ctxDir := relContext(t, map[string]string{"Containerfile": relSleepFile})
	plan := own.plan(t)
	tag := "localhost/farm-test/dead-runs:" + relNonce()
	t.Cleanup(func() { exec.Command("podman", "rmi", tag+"-linux-amd64").Run() })
	start := func(sleep string) (*relProc, string) {
		nonce := relNonce()
		p := relStart(t, nil, relOpen(t, plan), "farm-build", "--progress", "plain", "--log-level", "debug", "-t", tag,
			"--build-arg", "NONCE="+nonce, "--build-arg", "SLEEP="+sleep, ctxDir)
		relWaitFor(t, p, p.stderr, "started-"+nonce, 2*time.Minute)
		return p, relRunOf(t, p)
	}
	runsOf := func(m map[string]string) []string { return slices.Collect(maps.Values(m)) }

	a, runA := start("271")
	b, runB := start("272") // A is alive: B leaves it alone
	a.cmd.Process.Kill()
	a.wait(t, time.Minute)
	own.kill()
	if code := b.wait(t, time.Minute); code != 1 {
		t.Fatalf("run B, its node killed: exit %d, want 1", code)
	}
	own.start(t)
	left := own.workingContainers(t)
	t.Logf("working containers after A and B: %v", left)
	if !slices.Contains(runsOf(left), runA) || !slices.Contains(runsOf(left), runB) {
		t.Fatalf("the test needs A's and B's working containers left on the node: %v", left)
	}
	if len(psMatches(t, "sleep 271")) == 0 {
		t.Fatalf("the test needs A's RUN step still running")
	}

	live, runL := start("93")
	for _, run := range []string{runA, runB} {
		if !regexp.MustCompile(`cleaned up after a dead run.* run=` + run).MatchString(relRead(live.stderr)) {
			t.Errorf("run L did not say it cleaned up after run %s", run)
		}
	}
	for id, run := range own.workingContainers(t) {
		if run == runA || run == runB {
			t.Errorf("working container %s of dead run %s is left", id[:12], run)
		}
	}
	if left := psMatches(t, "sleep 271"); len(left) != 0 {
		t.Errorf("dead run A's RUN step still runs: %v", left)
	}

	r := run(t, nil, fmt.Sprintf("farm-build --progress plain -t %s --build-arg NONCE=%s --build-arg SLEEP=0 %s < %s", tag, relNonce(), ctxDir, plan))
	if r.code != 0 {
		t.Fatalf("run C: exit %d", r.code)
	}
	if strings.Contains(r.stderr, "cleaned up after a dead run") {
		t.Errorf("run C cleaned up after a run that was not dead:\n%s", r.stderr)
	}
	if after := own.workingContainers(t); !slices.Contains(runsOf(after), runL) || len(psMatches(t, "sleep 93")) == 0 {
		t.Errorf("the live run L (%s) lost its working container or its RUN step: %v", runL, after)
	}
	live.cmd.Process.Signal(syscall.SIGINT)
	if code := live.wait(t, time.Minute); code != 130 {
		t.Errorf("the live run L, interrupted: exit %d", code)
	}
	podman(t, "--url", ownURL, "container", "exists", "users-own")
	podman(t, "--url", ownURL, "image", "exists", "localhost/users/own:1")
}

// A plan naming linux/amd64 twice (two schedulers' jobs merged, a plan
// edited by hand): farm-build refuses the whole plan, says which line, and
// builds nothing; no "1 of 2 platforms failed" for one platform.
func TestTwoJobsForOnePlatformBuildNothing(t *testing.T) {
	plan := relRead(relPins(t, "linux/amd64=lab-1"))
	var job string
	for _, line := range strings.Split(plan, "\n") {
		if strings.Contains(line, `"kind":"job"`) {
			job = line
		}
	}
	twice := job + "\n" + strings.Replace(job, `"name":"lab-1"`, `"name":"lab-2"`, 1) + "\n" + `{"v":1,"kind":"end"}` + "\n"
	in := relWriteFile(t, filepath.Join(t.TempDir(), "plan.jsonl"), twice)
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	r := run(t, nil, fmt.Sprintf("farm-build --progress plain -t localhost/farm-test/twice:%s --build-arg NONCE=%s %s < %s", relNonce(), relNonce(), ctxDir, in))
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	errs := errorsOf(decode(t, r.stdout))
	if len(errs) != 1 || !strings.Contains(errs[0].Error, "a second job for linux/amd64 (the first is on line 1)") || errs[0].Line != 2 {
		t.Errorf("want one error record about line 2, got %+v", errs)
	}
	if strings.Contains(r.stderr, "STEP ") || strings.Contains(r.stderr, "platforms failed") || len(imagesOf(decode(t, r.stdout))) != 0 {
		t.Errorf("farm-build built from a plan naming a platform twice, or counted platforms:\n%s", r.stderr)
	}
}

// A farm of 9,000 nodes (lab-1 under 9,000 names, and the lab): farm-plan's
// job lines stay far under the 4 MiB record limit (each job has the best
// 16 alternatives), and farm-build builds from the plan.
func TestHugeFarmPlansAndBuilds(t *testing.T) {
	nodes := run(t, nil, "farm-nodes --farm lab --timeout 60s")
	if nodes.code != 0 {
		t.Fatalf("farm-nodes: exit %d", nodes.code)
	}
	var lab1 string
	var b strings.Builder
	for _, line := range strings.Split(nodes.stdout, "\n") {
		if strings.Contains(line, `"kind":"node"`) {
			b.WriteString(line + "\n")
			if strings.Contains(line, `"name":"lab-1"`) {
				lab1 = line
			}
		}
	}
	for i := 0; i < 9000; i++ {
		b.WriteString(strings.Replace(lab1, `"name":"lab-1"`, fmt.Sprintf(`"name":"lab-1-%d"`, i), 1) + "\n")
	}
	b.WriteString(`{"v":1,"kind":"end"}` + "\n")
	dir := t.TempDir()
	in := relWriteFile(t, filepath.Join(dir, "nodes.jsonl"), b.String())
	plan := filepath.Join(dir, "plan.jsonl")
	if r := run(t, nil, fmt.Sprintf("farm-plan --platforms linux/amd64,linux/arm64 < %s > %s", in, plan)); r.code != 0 {
		t.Fatalf("farm-plan: exit %d", r.code)
	}
	for _, line := range strings.Split(relRead(plan), "\n") {
		if len(line) > 64<<10 {
			t.Errorf("a plan line of %d bytes: want a few KiB (the limit is %d)", len(line), record.MaxLine)
		}
	}
	for _, rec := range decode(t, relRead(plan)) {
		if j, ok := rec.(*record.Job); ok && len(j.Alternatives) > 16 {
			t.Errorf("%s has %d alternatives, want at most 16", j.Platform, len(j.Alternatives))
		}
	}
	tag := "localhost/farm-test/huge:" + relNonce()
	r := run(t, nil, fmt.Sprintf("farm-build --progress plain -t %s --build-arg NONCE=%s %s < %s", tag, relNonce(), relContext(t, map[string]string{"Containerfile": nonceFile}), plan))
	imgs := imagesOf(decode(t, r.stdout))
	t.Cleanup(func() {
		for _, img := range imgs {
			relRemoveOnNodes(t, img.Ref)
			exec.Command("podman", "rmi", img.Ref).Run()
		}
	})
	if r.code != 0 || len(imgs) != 2 {
		t.Fatalf("farm-build from the huge farm's plan: exit %d, %d images", r.code, len(imgs))
	}
}

// What dead runs leave in the node's podman temporary directory (its
// service's TMPDIR), and on this machine, a later run removes, and nothing
// else. Run A: SIGKILLed mid-build, then the node's service is killed
// (A's upload, libpod_builder*/ with tarBall and build/, stays; its RUN
// step's bundle, buildah*/, stays empty, naming nobody). Run B, the next run, removes A's; then B is SIGKILLed
// mid-upload (its partial tarBall stays, and its private local podman
// service's /tmp/farm-local-* directory). Run L, the next, removes B's and
// builds on; run C, while L builds, removes nothing of L's. A user's upload
// directory (no mark) stays throughout.
func TestDeadRunsTempFilesAreRemovedByTheNextRun(t *testing.T) {
	own := relStartOwnNode(t)
	users := filepath.Join(own.dir, "tmp", "libpod_builder1")
	os.MkdirAll(users, 0o700)
	relGzipFile(t, filepath.Join(users, "tarBall"), "")
	ctxDir := relContext(t, map[string]string{"Containerfile": relSleepFile})
	relRandomFile(t, filepath.Join(ctxDir, "big"), 64<<20)
	plan := own.plan(t)
	tag := "localhost/farm-test/dead-tmp:" + relNonce()
	t.Cleanup(func() { exec.Command("podman", "rmi", tag+"-linux-amd64").Run() })
	start := func(sleep string) *relProc {
		return relStart(t, nil, relOpen(t, plan), "farm-build", "--progress", "plain", "--log-level", "debug", "-t", tag,
			"--build-arg", "NONCE="+relNonce(), "--build-arg", "SLEEP="+sleep, ctxDir)
	}

	a := start("271")
	runA := relRunOf(t, a)
	relWaitFor(t, a, a.stderr, "started-", 2*time.Minute)
	a.cmd.Process.Kill()
	a.wait(t, time.Minute)
	own.kill()
	own.start(t)
	if left := own.tmpRuns(t); len(relDirsOf(left, runA)) == 0 {
		t.Fatalf("the test needs A's upload left: %v", left)
	}

	b := start("0")
	runB := own.waitUpload(t, runA)
	b.cmd.Process.Kill()
	b.wait(t, time.Minute)
	left := own.tmpRuns(t)
	if dirs := relDirsOf(left, runB); len(dirs) != 1 || fileExists(filepath.Join(dirs[0], "build")) {
		t.Fatalf("the test needs B's partial upload left, and no build/ (B was not killed mid-upload): %v", left)
	}
	if dirs := relDirsOf(left, runA); len(dirs) != 0 || !regexp.MustCompile(`cleaned up after a dead run.* run=`+runA+`.* "temporary directories"=[1-9]`).MatchString(relRead(b.stderr)) {
		t.Errorf("run B left dead run A's temporary directories %v, or did not say it removed them", dirs)
	}
	privB := relPrivateServiceDir(t, b)

	live := start("93")
	runL := relRunOf(t, live)
	relWaitFor(t, live, live.stderr, "started-", 2*time.Minute)
	if dirs := relDirsOf(own.tmpRuns(t), runB); len(dirs) != 0 {
		t.Errorf("run L left dead run B's partial upload: %v", dirs)
	}
	if fileExists(privB) {
		t.Errorf("run L left dead run B's private service directory %s", privB)
	}
	r := run(t, nil, fmt.Sprintf("farm-build --progress plain -t %s --build-arg NONCE=%s --build-arg SLEEP=0 %s < %s", tag, relNonce(), ctxDir, plan))
	if r.code != 0 || strings.Contains(r.stderr, "cleaned up after a dead run") {
		t.Errorf("run C: exit %d, or it cleaned up after a run that was not dead:\n%s", r.code, r.stderr)
	}
	if dirs := relDirsOf(own.tmpRuns(t), runL); len(dirs) == 0 || !fileExists(relPrivateServiceDir(t, live)) {
		t.Errorf("the live run L lost its upload or its private service directory: %v", own.tmpRuns(t))
	}
	if _, err := os.Stat(filepath.Join(users, "tarBall")); err != nil {
		t.Errorf("the user's upload directory went: %v", err)
	}
	live.cmd.Process.Signal(syscall.SIGINT)
	live.wait(t, time.Minute)
}

// relGzipFile writes a small gzip file with the comment.
func relGzipFile(t *testing.T, path, comment string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Comment = comment
	zw.Write([]byte("a user's build context"))
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tmpRuns maps the own node's podman temporary directories to the farm run
// each names ("" for none): an upload by its gzip comment, a RUN step's
// bundle by its hosts entry.
func (n *relOwnNode) tmpRuns(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	dirs, _ := filepath.Glob(filepath.Join(n.dir, "tmp", "*"))
	for _, d := range dirs {
		out[d] = ""
		if f, err := os.Open(filepath.Join(d, "tarBall")); err == nil {
			if zr, err := gzip.NewReader(f); err == nil && strings.HasPrefix(zr.Comment, "farm-run ") {
				out[d] = strings.TrimPrefix(zr.Comment, "farm-run ")
			}
			f.Close()
		} else if m := regexp.MustCompile(`farm-([0-9a-f]{12})[0-9a-f]{8}\.invalid`).FindStringSubmatch(relRead(filepath.Join(d, "hosts"))); m != nil {
			out[d] = m[1]
		}
	}
	return out
}

// waitUpload waits for an upload of a run other than not to start on the
// node, and returns its run.
func (n *relOwnNode) waitUpload(t *testing.T, not string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for d, run := range n.tmpRuns(t) {
			if run != "" && run != not && fileExists(filepath.Join(d, "tarBall")) {
				return run
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no upload started")
	return ""
}

// relDirsOf lists the directories of m that name run.
func relDirsOf(m map[string]string, run string) []string {
	var out []string
	for d, r := range m {
		if r == run {
			out = append(out, d)
		}
	}
	return out
}

var relPrivateService = regexp.MustCompile(`uri=unix://(\S+)/podman\.sock from="private service`)

// relPrivateServiceDir is the directory of the private local podman
// service farm-build p started.
func relPrivateServiceDir(t *testing.T, p *relProc) string {
	t.Helper()
	m := relPrivateService.FindStringSubmatch(relRead(p.stderr))
	if m == nil {
		t.Fatalf("the test needs farm-build to start a private local podman service (no CONTAINER_HOST):\n%s", relRead(p.stderr))
	}
	return m[1]
}

// On a rootless node (lab-rootless: podman 4.3.1 as user farmlab, whose
// temporary directory is this machine's /var/tmp, shared with the rootful
// nodes): farm-build SIGKILLed mid-upload leaves its partial upload there,
// owned by farmlab. A run on a rootful node (lab-1, as root) leaves it
// alone: it is not its user's, and farmlab's runs have their leases in
// farmlab's home. The next run on lab-rootless removes it.
func TestRootlessDeadUploadRemovedByTheNextRun(t *testing.T) {
	kindNodes(t)
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, "farm-nodes --node lab-rootless "+kindsTimeout+" | farm-plan --platforms linux/amd64 > "+plan); r.code != 0 {
		t.Fatalf("planning on lab-rootless: exit %d", r.code)
	}
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	relRandomFile(t, filepath.Join(ctxDir, "big"), 64<<20)
	tag := "localhost/farm-test/rootless-dead-upload:" + relNonce()
	b := relStart(t, nil, relOpen(t, plan), "farm-build", "--progress", "plain", "--log-level", "debug", "-t", tag, "--build-arg", "NONCE="+relNonce(), ctxDir)
	runB := relRunOf(t, b)
	var dir string
	for deadline := time.Now().Add(2 * time.Minute); dir == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if dirs := relDirsOf(relMarkedUploads("/var/tmp"), runB); len(dirs) == 1 {
			dir = dirs[0]
		}
	}
	b.cmd.Process.Kill()
	b.wait(t, time.Minute)
	st, err := os.Stat(dir)
	if dir == "" || err != nil || st.Sys().(*syscall.Stat_t).Uid == 0 || fileExists(filepath.Join(dir, "build")) {
		t.Fatalf("the test needs farm-build's partial upload on lab-rootless, farmlab's, not unpacked (%q: %v)", dir, err)
	}
	rootful := run(t, nil, fmt.Sprintf("farm-build --progress plain -t %s --build-arg NONCE=%s %s < %s", tag, relNonce(), relContext(t, map[string]string{"Containerfile": nonceFile}), relPins(t, "linux/amd64=lab-1")))
	if _, err := os.Stat(dir); rootful.code != 0 || err != nil {
		t.Fatalf("a run on lab-1 (exit %d) removed farmlab's upload: %v", rootful.code, err)
	}
	next := run(t, nil, fmt.Sprintf("farm-build --progress plain -t %s --build-arg NONCE=%s %s < %s", tag, relNonce(), ctxDir, plan))
	if next.code != 0 {
		t.Errorf("the next run on lab-rootless: exit %d", next.code)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the next run on lab-rootless left the dead run's upload %s", dir)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", tag+"-linux-amd64").Run() })
}

// relMarkedUploads maps the upload directories in tmp to the farm run each
// names ("" for none).
func relMarkedUploads(tmp string) map[string]string {
	out := map[string]string{}
	balls, _ := filepath.Glob(filepath.Join(tmp, "libpod_builder*", "tarBall"))
	for _, ball := range balls {
		out[filepath.Dir(ball)] = ""
		if f, err := os.Open(ball); err == nil {
			if zr, err := gzip.NewReader(f); err == nil && strings.HasPrefix(zr.Comment, "farm-run ") {
				out[filepath.Dir(ball)] = strings.TrimPrefix(zr.Comment, "farm-run ")
			}
			f.Close()
		}
	}
	return out
}

// On podman 5 (lab-p5, podman 5.4), the service unpacks the upload as it
// arrives, into libpod_builder*/build/ (there is no tarBall: the gzip
// header's mark never reaches the disk). It removes the directory when the
// request ends, also when its client dies; a service killed mid-build leaves
// it. Run A: its node's service killed mid-build (its RUN step goes on), then
// A SIGKILLed; the service restarted. The next run, L, removes A's
// directory; run C, while L builds, removes nothing of L's. A user's
// unpacked context (no mark) stays throughout. Each run of the test leaves
// one empty buildah*/ on lab-p5, A's RUN step's (a known leftover:
// docs/reliability.md).
func TestPodman5DeadRunsContextRemovedByTheNextRun(t *testing.T) {
	kindNodes(t)
	tmp := filepath.Join(labDir(), "base", "trixie", "var", "tmp")
	users := filepath.Join(tmp, "libpod_builder-users-"+relNonce())
	os.MkdirAll(filepath.Join(users, "build"), 0o700)
	os.WriteFile(filepath.Join(users, "build", "Containerfile"), []byte("FROM scratch\n"), 0o600)
	t.Cleanup(func() { os.RemoveAll(users) })
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, "farm-nodes --node lab-p5 "+kindsTimeout+" | farm-plan --platforms linux/amd64 > "+plan); r.code != 0 {
		t.Fatalf("planning on lab-p5: exit %d", r.code)
	}
	tag := "localhost/farm-test/p5-dead-context:" + relNonce()
	t.Cleanup(func() { exec.Command("podman", "rmi", tag+"-linux-amd64").Run() })
	start := func(sleep, nonce string) (*relProc, string) {
		ctxDir := relContext(t, map[string]string{"Containerfile": relSleepFile, nonce: nonce})
		p := relStart(t, nil, relOpen(t, plan), "farm-build", "--progress", "plain", "--log-level", "debug", "-t", tag,
			"--build-arg", "NONCE="+relNonce(), "--build-arg", "SLEEP="+sleep, ctxDir)
		relWaitFor(t, p, p.stderr, "started-", 2*time.Minute)
		dirs, _ := filepath.Glob(filepath.Join(tmp, "libpod_builder*", "build", nonce))
		if len(dirs) != 1 {
			t.Fatalf("the test needs the run's unpacked context on lab-p5 (%s): %v", nonce, dirs)
		}
		return p, filepath.Dir(filepath.Dir(dirs[0]))
	}
	a, dirA := start("271", "a-"+relNonce())
	runA := relRunOf(t, a)
	labDown(t, "node", "lab-p5")
	a.cmd.Process.Kill()
	a.wait(t, time.Minute)
	lab(t, "node-start", "lab-p5")
	if !fileExists(dirA) {
		t.Fatalf("the test needs dead run A's unpacked context left on lab-p5 (%s)", dirA)
	}
	live, dirL := start("93", "l-"+relNonce())
	runL := relRunOf(t, live)
	if fileExists(dirA) || !regexp.MustCompile(`cleaned up after a dead run.* run=`+runA+`.* "temporary directories"=[1-9]`).MatchString(relRead(live.stderr)) {
		t.Errorf("the next run, L, left dead run A's unpacked context %s, or did not say it removed it", dirA)
	}
	r := run(t, nil, fmt.Sprintf("farm-build --progress plain -t %s --build-arg NONCE=%s --build-arg SLEEP=0 %s < %s",
		tag, relNonce(), relContext(t, map[string]string{"Containerfile": relSleepFile}), plan))
	if r.code != 0 || strings.Contains(r.stderr, "run="+runL) {
		t.Errorf("run C: exit %d, or it cleaned up after the live run L:\n%s", r.code, r.stderr)
	}
	if !fileExists(filepath.Join(dirL, "build")) {
		t.Errorf("run C removed the live run L's context %s", dirL)
	}
	if !fileExists(filepath.Join(users, "build", "Containerfile")) {
		t.Errorf("a run removed the user's unmarked directory %s", users)
	}
	live.cmd.Process.Signal(syscall.SIGINT)
	live.wait(t, time.Minute)
}
