//go:build lab

package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// The whole mission: two platforms, one native and one emulated, built on
// two nodes, pulled back, one list, pushed, and each instance runs as its
// own architecture.
func TestPipelineTwoPlatformsToRegistry(t *testing.T) {
	reg := labVar(t, "FARM_LAB_REGISTRY")
	image := reg + "/farm-test/pipeline:latest"
	r := run(t, nil, "set -o pipefail; farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 "+
		"| farm-build -t "+image+" test/lab/testdata/targetarch | tee /dev/stderr | farm-manifest")
	if r.code != 0 {
		t.Fatalf("pipeline exit %d", r.code)
	}
	recs := decode(t, r.stdout)
	if len(recs) != 1 {
		t.Fatalf("want one manifest record, got %d", len(recs))
	}
	m, ok := recs[0].(*record.Manifest)
	if !ok || m.Name != image || len(m.Instances) != 2 {
		t.Fatalf("manifest record %+v", recs[0])
	}
	if !strings.Contains(r.stderr, "[linux/arm64@lab-") || !strings.Contains(r.stderr, "[linux/amd64@lab-") {
		t.Errorf("build logs should be prefixed [platform@node]")
	}

	// The pulled-back images: each config says its own architecture and its
	// RUN step ran as that architecture.
	for arch, uname := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		ref := image + "-linux-" + arch
		if got := podman(t, "image", "inspect", ref, "--format", "{{.Architecture}}"); got != arch {
			t.Errorf("%s: config architecture %q", ref, got)
		}
		out := podman(t, "run", "--rm", "--pull=never", ref)
		if !strings.Contains(out, "arch="+uname+" targetarch="+arch) {
			t.Errorf("%s printed %q", ref, out)
		}
	}

	podman(t, "manifest", "push", "--all", "--tls-verify=false", image, "docker://"+image)
	raw, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+image).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var index struct {
		Manifests []struct {
			Platform struct{ OS, Architecture string }
		}
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatalf("registry answer %s: %v", raw, err)
	}
	var plats []string
	for _, m := range index.Manifests {
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if len(plats) != 2 || !contains(plats, "linux/amd64") || !contains(plats, "linux/arm64") {
		t.Fatalf("registry index platforms %v, want linux/amd64 and linux/arm64", plats)
	}
	// secret.env is in .containerignore: it never reached the image.
	if out, _ := exec.Command("podman", "run", "--rm", "--pull=never", image+"-linux-amd64", "ls", "/").CombinedOutput(); strings.Contains(string(out), "secret") {
		t.Errorf("an ignored file reached the image: %s", out)
	}
}

// Running the same pipeline twice leaves one list with two entries, and the
// second run reuses the nodes' caches and skips the transfer.
func TestPipelineTwiceLeavesOneList(t *testing.T) {
	image := "localhost/farm-test/twice:1"
	script := "set -o pipefail; farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 --affinity " + image +
		" | farm-build -t " + image + " test/lab/testdata/targetarch | farm-manifest"
	for i := 0; i < 2; i++ {
		if r := run(t, nil, script); r.code != 0 {
			t.Fatalf("run %d: exit %d", i+1, r.code)
		} else if i == 1 && !strings.Contains(r.stderr, "nothing to transfer") {
			t.Errorf("the second run should find the images already local")
		}
	}
	var list struct{ Manifests []json.RawMessage }
	if err := json.Unmarshal([]byte(podman(t, "manifest", "inspect", image)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Manifests) != 2 {
		t.Fatalf("want 2 entries after two runs, got %d", len(list.Manifests))
	}
}

// A Containerfile that fails: an error record, no image record, no retry on
// another node, and farm-manifest makes no list.
func TestFailingBuildLeavesNoList(t *testing.T) {
	image := "localhost/farm-test/fails:1"
	exec.Command("podman", "manifest", "rm", image).Run()
	dir := t.TempDir()
	built := filepath.Join(dir, "built.jsonl")
	r := run(t, nil, "farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t "+image+" test/lab/testdata/fail > "+built)
	if r.code != 1 {
		t.Errorf("farm-build exit %d, want 1", r.code)
	}
	data, _ := os.ReadFile(built)
	recs := decode(t, string(data))
	if imgs := imagesOf(recs); len(imgs) != 0 {
		t.Fatalf("a failed build must not yield image records: %v", imgs)
	}
	errs := errorsOf(recs)
	if len(errs) != 2 || !strings.Contains(errs[0].Error, "exit status 3") || errs[0].Stage != "farm-build" {
		t.Fatalf("want 2 error records naming the failed step, got %+v", errs)
	}
	if strings.Contains(r.stderr, "failing over") {
		t.Errorf("a build that fails by itself must not be retried elsewhere")
	}

	r = run(t, nil, "farm-manifest < "+built)
	if r.code != 1 || !strings.Contains(r.stderr, "not making a list") && !strings.Contains(r.stderr, "no image records") {
		t.Fatalf("farm-manifest must refuse: exit %d", r.code)
	}
	if len(errorsOf(decode(t, r.stdout))) != 2 {
		t.Errorf("error records must pass through farm-manifest")
	}
	if err := exec.Command("podman", "manifest", "inspect", image).Run(); err == nil {
		t.Fatalf("a list %s was made", image)
	}
}

// pinnedJob writes a plan that builds platform on node (and may fail over to
// the others), using the example custom scheduler.
func pinnedJob(t *testing.T, platform, node string) string {
	t.Helper()
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	// A generous --timeout: the lab machine is shared and often loaded.
	r := run(t, nil, fmt.Sprintf("farm-nodes --farm lab --timeout 60s | scripts/examples/pin-platform.sh %s=%s > %s", platform, node, plan))
	if r.code != 0 {
		t.Fatalf("planning: exit %d", r.code)
	}
	return plan
}

// startBuild starts farm-build on a plan and returns it with its stderr file.
func startBuild(t *testing.T, plan, tag, sleep string, extra ...string) (*exec.Cmd, string, string) {
	t.Helper()
	root := repo(t)
	dir := t.TempDir()
	stderr, stdout := filepath.Join(dir, "stderr"), filepath.Join(dir, "stdout")
	// --no-cache: an earlier run's cache would skip the very step the
	// test needs running.
	args := append([]string{"-t", tag, "--no-cache", "--build-arg", "SLEEP=" + sleep}, extra...)
	args = append(args, "test/lab/testdata/slow")
	cmd := exec.Command(filepath.Join(root, "bin", "farm-build"), args...)
	cmd.Dir = root
	in, err := os.Open(plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	errf, _ := os.Create(stderr)
	outf, _ := os.Create(stdout)
	t.Cleanup(func() { errf.Close(); outf.Close() })
	cmd.Stdin, cmd.Stderr, cmd.Stdout = in, errf, outf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A test that failed before farm-build exited would leave it running,
	// and its build with it, in the way of the tests after it: interrupt
	// it, so it stops the build on the node as it does for a user. After
	// a Wait, Signal sends nothing.
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt) })
	return cmd, stdout, stderr
}

// waitFor polls a file until it contains text.
func waitFor(t *testing.T, path, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(path); strings.Contains(string(data), text) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	data, _ := os.ReadFile(path)
	t.Fatalf("%q did not appear in %s within %s:\n%s", text, path, timeout, data)
}

func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		cmd.Process.Kill()
		t.Fatalf("farm-build did not exit within %s", timeout)
		return -1
	}
}

// someProcess waits until a process on this machine has pattern in its
// command line: under emulation on a loaded machine, a RUN step's echo can
// come before the command after it has started.
func someProcess(t *testing.T, pattern string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); len(psMatches(t, pattern)) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no process %q within %s", pattern, timeout)
		}
	}
}

// noProcess waits until no process on this machine (where the lab nodes
// run) has pattern in its command line.
func noProcess(t *testing.T, pattern string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		hits := psMatches(t, pattern)
		if len(hits) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running after %s: %v", timeout, hits)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A node's podman service killed mid-build: the job moves to an
// alternative, and nothing of it keeps running on the dead node.
func TestNodeKilledMidBuildFailsOver(t *testing.T) {
	plan := pinnedJob(t, "linux/amd64", "lab-2")
	cmd, stdout, stderr := startBuild(t, plan, "localhost/farm-test/failover:1", "13")
	waitFor(t, stderr, "[linux/amd64@lab-2] sleeping 13s", time.Minute)
	labDown(t, "node", "lab-2")
	if code := waitExit(t, cmd, 3*time.Minute); code != 0 {
		data, _ := os.ReadFile(stderr)
		t.Fatalf("farm-build exit %d:\n%s", code, data)
	}
	data, _ := os.ReadFile(stdout)
	img := imagesOf(decode(t, string(data)))["linux/amd64"]
	if img == nil || img.Node == "lab-2" {
		t.Fatalf("want the image built on an alternative, got %+v", img)
	}
	waitFor(t, stderr, "failing over", time.Second)
	if data, _ := os.ReadFile(stderr); !strings.Contains(string(data), "@"+img.Node+"] sleeping 13s") {
		t.Errorf("the alternative did not run the build itself:\n%s", data)
	}
	// The orphaned RUN step on lab-2 was killed through its cgroup.
	noProcess(t, "sleep 13", 5*time.Second)
}

// Ctrl-C during a build: exit 130, the remote build is killed, and local
// storage gets nothing.
func TestInterruptStopsRemoteBuilds(t *testing.T) {
	for _, sig := range []struct {
		signal syscall.Signal
		code   int
		sleep  string
	}{{syscall.SIGINT, 130, "317"}, {syscall.SIGTERM, 143, "319"}, {syscall.SIGHUP, 129, "313"}} {
		t.Run(sig.signal.String(), func(t *testing.T) {
			tag := "localhost/farm-test/cancel:" + sig.sleep
			// A run of this test that was itself killed may have left the
			// image; it would pass for one this run left behind.
			exec.Command("podman", "rmi", "--ignore", tag+"-linux-arm64").Run()
			plan := pinnedJob(t, "linux/arm64", "lab-3")
			cmd, stdout, stderr := startBuild(t, plan, tag, sig.sleep)
			waitFor(t, stderr, "sleeping "+sig.sleep+"s", time.Minute)
			someProcess(t, "sleep "+sig.sleep, 30*time.Second)
			cmd.Process.Signal(sig.signal)
			if code := waitExit(t, cmd, time.Minute); code != sig.code {
				t.Fatalf("exit %d, want %d", code, sig.code)
			}
			noProcess(t, "sleep "+sig.sleep, 5*time.Second)
			if data, _ := os.ReadFile(stdout); len(imagesOf(decode(t, string(data)))) != 0 {
				t.Errorf("an interrupted run must not report images")
			}
			if err := exec.Command("podman", "image", "exists", tag+"-linux-arm64").Run(); err == nil {
				t.Errorf("an interrupted run left %s in local storage", tag)
			}
		})
	}
}

// farm-build --push: the nodes push, and farm-manifest assembles the list in
// the registry from the digests without pulling anything here.
func TestPushBuildsTheListInTheRegistry(t *testing.T) {
	reg := labVar(t, "FARM_LAB_REGISTRY")
	for _, format := range []struct{ flag, mediaType string }{
		{"oci", "application/vnd.oci.image.index.v1+json"},
		{"v2s2", "application/vnd.docker.distribution.manifest.list.v2+json"},
	} {
		t.Run(format.flag, func(t *testing.T) {
			image := reg + "/farm-test/pushed-" + format.flag + ":1"
			r := run(t, nil, "set -o pipefail; farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 "+
				"| farm-build --push --tls-verify=false -t "+image+" test/lab/testdata/targetarch "+
				"| farm-manifest --tls-verify=false --format "+format.flag)
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			recs := decode(t, r.stdout)
			m, ok := recs[0].(*record.Manifest)
			if !ok || len(m.Instances) != 2 || m.Pushed == "" {
				t.Fatalf("manifest record %+v", recs[0])
			}
			raw, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+image).Output()
			if err != nil {
				t.Fatal(err)
			}
			var list struct {
				MediaType string
				Manifests []struct {
					Digest   string
					Platform struct{ OS, Architecture string }
				}
			}
			if err := json.Unmarshal(raw, &list); err != nil {
				t.Fatal(err)
			}
			if list.MediaType != format.mediaType || len(list.Manifests) != 2 {
				t.Fatalf("registry holds %s", raw)
			}
			for i, inst := range m.Instances {
				if list.Manifests[i].Digest != inst.Digest || list.Manifests[i].Platform.OS+"/"+list.Manifests[i].Platform.Architecture != inst.Platform {
					t.Errorf("entry %d: registry %+v, record %+v", i, list.Manifests[i], inst)
				}
			}
			if err := exec.Command("podman", "image", "exists", image+"-linux-arm64").Run(); err == nil {
				t.Errorf("--push must not pull the image back")
			}
		})
	}
}

// --allow-partial makes a list of what succeeded and names what is missing;
// without it, nothing is made.
func TestAllowPartial(t *testing.T) {
	image := "localhost/farm-test/partial:1"
	exec.Command("podman", "manifest", "rm", image).Run()
	dir := t.TempDir()
	built := filepath.Join(dir, "built.jsonl")
	r := run(t, nil, "farm-nodes --farm lab | farm-plan --platforms linux/amd64 | farm-build -t "+image+" test/lab/testdata/targetarch > "+built)
	if r.code != 0 {
		t.Fatalf("build exit %d", r.code)
	}
	// A failure upstream for another platform, as farm-build reports one.
	// It goes before farm-build's end record: nothing after that is read.
	failure := `{"v":1,"kind":"error","stage":"farm-build","error":"building linux/arm64 on lab-2: exit status 1","platform":"linux/arm64","node":"lab-2"}`
	end := `{"v":1,"kind":"end","stage":"farm-build"}` + "\n"
	stream := relRead(built)
	if !strings.HasSuffix(stream, end) {
		t.Fatalf("farm-build's output does not end with its end record:\n%s", stream)
	}
	relWriteFile(t, built, strings.TrimSuffix(stream, end)+failure+"\n"+end)

	r = run(t, nil, "farm-manifest < "+built)
	if r.code != 1 || !strings.Contains(r.stderr, "linux/arm64") {
		t.Fatalf("without --allow-partial: exit %d, want 1 naming linux/arm64", r.code)
	}
	if exec.Command("podman", "manifest", "inspect", image).Run() == nil {
		t.Fatal("a list was made despite the failure")
	}
	r = run(t, nil, "farm-manifest --allow-partial < "+built)
	if r.code != 0 || !strings.Contains(r.stderr, "missing") || !strings.Contains(r.stderr, "linux/arm64") {
		t.Fatalf("with --allow-partial: exit %d; stderr must name the missing platform", r.code)
	}
	recs := decode(t, r.stdout)
	if len(errorsOf(recs)) != 1 {
		t.Errorf("the error record must pass through")
	}
	var m *record.Manifest
	for _, rec := range recs {
		if mm, ok := rec.(*record.Manifest); ok {
			m = mm
		}
	}
	if m == nil || len(m.Instances) != 1 || m.Instances[0].Platform != "linux/amd64" {
		t.Fatalf("want a list with linux/amd64 only: %+v", m)
	}
}

// --local adds this machine's podman service as node "local".
func TestNodesLocal(t *testing.T) {
	r := run(t, nil, "farm-nodes --local --node lab-1")
	nodes := nodesOf(decode(t, r.stdout))
	if r.code != 0 || nodes["local"] == nil || nodes["local"].Error != "" || !contains(nodes["local"].Native, "linux/amd64") {
		t.Fatalf("exit %d, local node %+v", r.code, nodes["local"])
	}
	if !contains(nodes["local"].Emulated, "linux/arm64") {
		t.Errorf("this machine's binfmt registrations should show arm64: %v", nodes["local"].Emulated)
	}
	if nodes["lab-1"] == nil {
		t.Errorf("--local adds to the farm, it does not replace it")
	}
}

// Ctrl-C must stop farm-build even while the stage before it keeps stdin
// open and says nothing more (a slow or stuck farm-plan).
func TestInterruptWithStdinStillOpen(t *testing.T) {
	plan := pinnedJob(t, "linux/amd64", "lab-1")
	job, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	root := repo(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	stderr := filepath.Join(t.TempDir(), "stderr")
	errf, _ := os.Create(stderr)
	defer errf.Close()
	cmd := exec.Command(filepath.Join(root, "bin", "farm-build"), "-t", "localhost/farm-test/open-stdin:1",
		"--no-cache", "--build-arg", "SLEEP=323", "test/lab/testdata/slow")
	cmd.Dir, cmd.Stdin, cmd.Stderr = root, pr, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	pw.Write(job) // and never close it
	waitFor(t, stderr, "sleeping 323s", time.Minute)
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd, 30*time.Second); code != 130 {
		t.Fatalf("exit %d, want 130", code)
	}
	noProcess(t, "sleep 323", 5*time.Second)
}

// farm build --node connects farm-build to the nodes while farm-nodes
// probes them (farm-build --preconnect): the job finds its node connected
// and farm-build dials it once; a named node the plan does not use is
// connected to, and nothing of the run is left on it.
func TestPreconnectDialsEachNodeOnce(t *testing.T) {
	image := "localhost/farm-test/preconnect:1"
	relRemoveLocal(t, image, image+"-linux-amd64")
	r := run(t, nil, "set -o pipefail; farm build --node lab-1,lab-2 --log-level debug"+
		" --plan-with 'scripts/examples/pin-platform.sh linux/amd64=lab-1' -t "+image+" test/lab/testdata/targetarch")
	if r.code != 0 {
		t.Fatalf("farm build: exit %d", r.code)
	}
	for _, node := range []string{"lab-1", "lab-2"} {
		if n := strings.Count(r.stderr, `msg=connecting node=`+node+" "); n != 1 {
			t.Errorf("farm-build dialled %s %d times, want once", node, n)
		}
		if !strings.Contains(r.stderr, `msg="connected early" node=`+node+" ") {
			t.Errorf("no early connection to %s", node)
		}
	}
}
