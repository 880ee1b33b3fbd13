//go:build lab

package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// Node kinds beyond rootful podman 4.3.1 (scripts/lab/part-kinds.sh):
// lab-p5 (rootful podman 5.4, Debian trixie) and lab-rootless (rootless
// podman 4.3.1), and the farm mixed = lab-1, lab-p5, lab-rootless.

// kindsTimeout is farm-nodes' --timeout here: lab-1's root shell is slow
// to start on a loaded machine.
const kindsTimeout = "--timeout 60s"

func kindNodes(t *testing.T) []string {
	t.Helper()
	nodes := strings.Fields(labVar(t, "FARM_LAB_KIND_NODES"))
	if len(nodes) != 2 {
		t.Fatalf("FARM_LAB_KIND_NODES = %v, want lab-p5 and lab-rootless (scripts/farm-lab up brings them up)", nodes)
	}
	return nodes
}

// runsAs runs an image of the list locally and returns what it prints.
func runsAs(t *testing.T, ref string) string {
	t.Helper()
	return podman(t, "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", ref)
}

// TestKindsNodeRecords: farm-nodes tells each kind what it is.
func TestKindsNodeRecords(t *testing.T) {
	kindNodes(t)
	r := run(t, nil, "farm-nodes --farm mixed "+kindsTimeout)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	nodes := nodesOf(decode(t, r.stdout))
	want := map[string]struct {
		podman   string
		rootless bool
		stop     string
	}{
		"lab-1":        {"4.", false, record.StopCgroup},
		"lab-p5":       {"5.", false, record.StopCgroup},
		"lab-rootless": {"4.", true, record.StopRuntime},
	}
	if len(nodes) != len(want) {
		t.Fatalf("farm mixed gave %d nodes, want %d", len(nodes), len(want))
	}
	for name, w := range want {
		n := nodes[name]
		if n == nil || n.Error != "" {
			t.Fatalf("%s: %+v", name, n)
		}
		if !strings.HasPrefix(n.Podman, w.podman) || n.Rootless != w.rootless || n.Stop != w.stop ||
			n.CgroupVersion == "" || n.CgroupManager == "" || !contains(n.Emulated, "linux/arm64") {
			t.Errorf("%s: podman %s rootless %v stop %s cgroup %s/%s emulated %v; want podman %s* rootless %v stop %s, arm64 emulated",
				name, n.Podman, n.Rootless, n.Stop, n.CgroupManager, n.CgroupVersion, n.Emulated, w.podman, w.rootless, w.stop)
		}
	}
}

// kindsPipeline runs the whole pipeline from the node records of nodes
// (farm-nodes arguments) for both platforms and checks the list: complete,
// each instance built where wanted, and each runs and prints its arch.
func kindsPipeline(t *testing.T, nodes, image string, wantNode map[string]string, flags ...string) {
	t.Helper()
	exec.Command("podman", "manifest", "rm", image).Run()
	t.Cleanup(func() { exec.Command("podman", "manifest", "rm", image).Run() })
	built := filepath.Join(t.TempDir(), "built.jsonl")
	r := run(t, nil, "set -o pipefail; farm-nodes "+nodes+" "+kindsTimeout+" | farm-plan --platforms linux/amd64,linux/arm64 "+
		"| farm-build -t "+image+" --no-cache "+strings.Join(flags, " ")+" test/lab/testdata/targetarch | tee "+built+" | farm-manifest")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	m, ok := decode(t, r.stdout)[0].(*record.Manifest)
	if !ok || len(m.Instances) != 2 {
		t.Fatalf("manifest record %s", r.stdout)
	}
	data, _ := os.ReadFile(built)
	imgs := imagesOf(decode(t, string(data)))
	for plat, arch := range map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"} {
		img := imgs[plat]
		if img == nil {
			t.Fatalf("no image for %s", plat)
		}
		if want := wantNode[plat]; want != "" && img.Node != want {
			t.Errorf("%s built on %s, want %s", plat, img.Node, want)
		}
		if img.Emulated != (plat == "linux/arm64") {
			t.Errorf("%s: emulated %v", plat, img.Emulated)
		}
		if out := runsAs(t, img.Ref); !strings.Contains(out, arch) {
			t.Errorf("%s from %s prints %q, want %s", plat, img.Node, out, arch)
		}
		if contains(flags, "--cleanup") {
			// podman image exists: 0 there, 1 not there, else an error
			switch err := exec.Command("podman", "--connection", img.Node, "image", "exists", img.ID).Run(); {
			case err == nil:
				t.Errorf("--cleanup left %s on %s", img.ID, img.Node)
			case !isExit(err, 1):
				t.Errorf("asking %s for %s: %v", img.Node, img.ID, err)
			}
		}
	}
}

func isExit(err error, code int) bool {
	exit, ok := err.(*exec.ExitError)
	return ok && exit.ExitCode() == code
}

// TestKindsPipelineMixed: the whole pipeline on the farm mixed.
func TestKindsPipelineMixed(t *testing.T) {
	kindNodes(t)
	kindsPipeline(t, "--farm mixed", "localhost/farm-test/kinds-mixed:1", nil)
}

// TestKindsPipelinePinned: the whole pipeline on each kind alone: amd64
// native, arm64 emulated, pull-back and --cleanup there.
func TestKindsPipelinePinned(t *testing.T) {
	for _, n := range kindNodes(t) {
		t.Run(n, func(t *testing.T) {
			kindsPipeline(t, "--node "+n, "localhost/farm-test/kinds-"+n+":1",
				map[string]string{"linux/amd64": n, "linux/arm64": n}, "--cleanup")
		})
	}
}

// nodePids lists which of pids still exist on the node, asked on the node
// itself (as its own user, in its own mount namespace).
func nodePids(t *testing.T, node string, pids []string) []string {
	t.Helper()
	script := "for p in " + strings.Join(pids, " ") + "; do [ -d /proc/$p ] && echo $p; done; exit 0"
	key := labVar(t, "FARM_LAB_KEY")
	user, port := "root", labVar(t, "FARM_LAB_P5_PORT")
	if node == "lab-rootless" {
		user, port = labVar(t, "FARM_LAB_ROOTLESS_USER"), labVar(t, "FARM_LAB_ROOTLESS_PORT")
	}
	out, err := exec.Command("ssh", "-i", key, "-p", port, "-o", "BatchMode=yes", user+"@127.0.0.1", script).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh %s: %v %s", node, err, out)
	}
	return strings.Fields(string(out))
}

// TestKindsInterruptStopsTheBuild: Ctrl-C on each kind, while the long RUN
// step runs and as soon as it starts (before its process exists: the
// service goes on with the build when its client is gone, and runc create
// takes a while): exit 130, and 2 s later no process of the step is left
// on the node, checked by pid there. On lab-rootless no cgroup can be
// made: the step is found through its OCI runtime state.
func TestKindsInterruptStopsTheBuild(t *testing.T) {
	for i, n := range kindNodes(t) {
		for j, when := range []string{"running", "starting"} {
			t.Run(n+"/"+when, func(t *testing.T) {
				interruptOnKind(t, n, when, fmt.Sprint(421+10*i+j))
			})
		}
	}
}

// interruptOnKind interrupts a build of the slow Containerfile on node n
// when its RUN step is running (its echo seen) or starting (its STEP line
// seen), and checks that no process of the step is left there.
func interruptOnKind(t *testing.T, n, when, sleep string) {
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, "farm-nodes --node "+n+" "+kindsTimeout+" | farm-plan --platforms linux/arm64 > "+plan); r.code != 0 {
		t.Fatalf("planning: exit %d", r.code)
	}
	cmd, stdout, stderr := startBuild(t, plan, "localhost/farm-test/kinds-cancel:"+sleep, sleep, "--log-level", "debug")
	// sleepPids: the step's sleep, asked on the node itself
	sleepPids := func() []string {
		var pids []string
		for _, line := range psMatches(t, "sleep "+sleep) {
			pids = append(pids, strings.Fields(line)[0])
		}
		if len(pids) == 0 {
			return nil
		}
		return nodePids(t, n, pids)
	}
	var pids []string
	if when == "running" {
		waitFor(t, stderr, "sleeping "+sleep+"s", 2*time.Minute)
		// The echo can arrive before the sleep after it has started
		// (under emulation, on a loaded machine): wait for its process.
		for deadline := time.Now().Add(30 * time.Second); len(pids) == 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			pids = sleepPids()
		}
		if len(pids) == 0 {
			t.Fatalf("the build's RUN step is not running on %s", n)
		}
	} else {
		waitFor(t, stderr, "STEP 3/3: RUN", 2*time.Minute)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd, time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130", code)
	}
	time.Sleep(2 * time.Second)
	// The pids seen before the interrupt, and any sleep of the step that
	// started since.
	if left := append(nodePids(t, n, pids), sleepPids()...); len(left) != 0 {
		data, _ := os.ReadFile(stderr)
		t.Fatalf("2 s after farm-build exited, %s still runs pids %v of the build; farm-build said:\n%s", n, left, data)
	}
	if data, _ := os.ReadFile(stdout); len(imagesOf(decode(t, string(data)))) != 0 {
		t.Errorf("an interrupted run must not report images")
	}
}

// TestKindsFailoverFromPodman5: lab-p5's podman service is killed in the
// middle of a build; the job finishes on another kind, and nothing of it
// keeps running on lab-p5.
func TestKindsFailoverFromPodman5(t *testing.T) {
	kindNodes(t)
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, "farm-nodes --farm mixed "+kindsTimeout+" | scripts/examples/pin-platform.sh linux/amd64=lab-p5 > "+plan); r.code != 0 {
		t.Fatalf("planning: exit %d", r.code)
	}
	cmd, stdout, stderr := startBuild(t, plan, "localhost/farm-test/kinds-failover:1", "23")
	waitFor(t, stderr, "[linux/amd64@lab-p5] sleeping 23s", 2*time.Minute)
	var pids []string
	for _, line := range psMatches(t, "sleep 23") {
		pids = append(pids, strings.Fields(line)[0])
	}
	labDown(t, "node", "lab-p5")
	if code := waitExit(t, cmd, 4*time.Minute); code != 0 {
		data, _ := os.ReadFile(stderr)
		t.Fatalf("farm-build exit %d:\n%s", code, data)
	}
	data, _ := os.ReadFile(stdout)
	img := imagesOf(decode(t, string(data)))["linux/amd64"]
	if img == nil || img.Node == "lab-p5" {
		t.Fatalf("want the image built on another kind, got %+v", img)
	}
	waitFor(t, stderr, "failing over", time.Second)
	if left := nodePids(t, "lab-p5", pids); len(left) != 0 {
		t.Errorf("the orphaned RUN step still runs on lab-p5: pids %v", left)
	}
}

// TestKindsNodeLoad: farm-nodes reports each kind's load, and a RUN step
// running on lab-rootless shows there as a build, counted for that service
// only (lab-p5, on the same machine, does not count it).
func TestKindsNodeLoad(t *testing.T) {
	kindNodes(t)
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, "farm-nodes --node lab-rootless "+kindsTimeout+" | farm-plan --platforms linux/amd64 > "+plan); r.code != 0 {
		t.Fatalf("planning: exit %d", r.code)
	}
	cmd, _, stderr := startBuild(t, plan, "localhost/farm-test/kinds-load:1", "437")
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGINT); waitExit(t, cmd, time.Minute) })
	waitFor(t, stderr, "sleeping 437s", 2*time.Minute)
	r := run(t, nil, "farm-nodes --farm mixed "+kindsTimeout)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	nodes := nodesOf(decode(t, r.stdout))
	for _, name := range []string{"lab-1", "lab-p5", "lab-rootless"} {
		n := nodes[name]
		if n == nil || n.Load == nil {
			t.Fatalf("%s: no load in %+v", name, n)
		}
		if n.Load.StorageFree <= 0 || n.Load.Average < 0 {
			t.Errorf("%s: load %+v, want free storage and a load average", name, *n.Load)
		}
	}
	if b := nodes["lab-rootless"].Load.Builds; b != 1 {
		t.Errorf("lab-rootless runs this test's RUN step: builds %d, want 1", b)
	}
	if b := nodes["lab-p5"].Load.Builds; b != 0 {
		t.Errorf("lab-p5 runs nothing of this test (nothing else uses it): builds %d, want 0", b)
	}
}

// TestKindsPlanAvoidsBusyNode: while a build runs on lab-p5, a plan of the
// farm mixed puts amd64 elsewhere, for an affinity that puts it on lab-p5
// when the farm is idle, unless every other node is at least as busy.
func TestKindsPlanAvoidsBusyNode(t *testing.T) {
	kindNodes(t)
	idle := filepath.Join(t.TempDir(), "nodes.jsonl")
	r := run(t, nil, "farm-nodes --farm mixed "+kindsTimeout+" | jq -c 'del(.load)' > "+idle+" && "+
		"for k in $(seq 100); do n=$(farm-plan -p amd64 --affinity img-$k < "+idle+" | jq -r 'select(.kind == \"job\") | .node.name'); "+
		"[ \"$n\" = lab-p5 ] && echo img-$k && break; done")
	affinity := strings.TrimSpace(r.stdout)
	if r.code != 0 || affinity == "" {
		t.Fatalf("no affinity puts amd64 on lab-p5 of an idle farm mixed (exit %d)", r.code)
	}
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, "farm-nodes --node lab-p5 "+kindsTimeout+" | farm-plan --platforms linux/amd64 > "+plan); r.code != 0 {
		t.Fatalf("planning: exit %d", r.code)
	}
	cmd, _, stderr := startBuild(t, plan, "localhost/farm-test/kinds-busy:1", "438")
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGINT); waitExit(t, cmd, time.Minute) })
	waitFor(t, stderr, "sleeping 438s", 2*time.Minute)
	r = run(t, nil, "farm-nodes --farm mixed "+kindsTimeout+" | farm-plan -p amd64 --affinity "+affinity+" --explain")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	var job *record.Job
	for _, rec := range decode(t, r.stdout) {
		if j, ok := rec.(*record.Job); ok {
			job = j
		}
	}
	if job == nil || job.Node.Load == nil {
		t.Fatalf("no job with a node load:\n%s", r.stdout)
	}
	if job.Node.Name != "lab-p5" {
		return // moved off the busy node
	}
	for _, alt := range job.Alternatives {
		if alt.Load != nil && alt.Load.Builds < job.Node.Load.Builds {
			t.Errorf("amd64 stays on lab-p5 (builds %d) while %s has %d builds:\n%s", job.Node.Load.Builds, alt.Name, alt.Load.Builds, r.stderr)
		}
	}
}

// TestKindsNodeInfoCache: a farm-nodes soon after another asks no node's
// podman info, on every kind (rootful 4.3.1, podman 5.4, rootless), and
// writes the same records: the load and free space read afresh, the rest
// as the service said. --cache-ttl 0 asks again.
func TestKindsNodeInfoCache(t *testing.T) {
	kindNodes(t)
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	probe := func(flags string) (map[string]*record.Node, string) {
		t.Helper()
		r := run(t, env, "farm-nodes --farm mixed --log-level debug "+kindsTimeout+" "+flags)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		return nodesOf(decode(t, r.stdout)), r.stderr
	}
	first, log := probe("")
	if strings.Contains(log, "podman info from the cache") {
		t.Fatalf("the first farm-nodes used a cache:\n%s", log)
	}
	second, log := probe("")
	uncached, logOff := probe("--cache-ttl 0")
	if strings.Contains(logOff, "podman info from the cache") {
		t.Errorf("--cache-ttl 0 used the cache:\n%s", logOff)
	}
	for _, name := range []string{"lab-1", "lab-p5", "lab-rootless"} {
		if !strings.Contains(log, `msg="podman info from the cache" node=`+name) {
			t.Errorf("the second farm-nodes asked %s's podman info again:\n%s", name, log)
		}
		a, b, c := first[name], second[name], uncached[name]
		if a == nil || b == nil || c == nil || a.Error != "" || b.Error != "" || c.Error != "" || a.Load == nil || b.Load == nil || c.Load == nil {
			t.Fatalf("%s: %+v / %+v / %+v", name, a, b, c)
		}
		// Free space as podman counts it, of the same filesystem, moments
		// apart.
		if d := b.Load.StorageFree - c.Load.StorageFree; d > 256<<20 || d < -256<<20 {
			t.Errorf("%s: storage free %d from the cache's path, %d from podman info", name, b.Load.StorageFree, c.Load.StorageFree)
		}
		for _, n := range []*record.Node{a, b, c} {
			n.Load = nil
		}
		if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(b, c) {
			t.Errorf("%s: the records differ:\n%+v\n%+v\n%+v", name, a, b, c)
		}
	}
}
