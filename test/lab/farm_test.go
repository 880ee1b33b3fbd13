//go:build lab

package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// (--node-timeout 2m: the lab shares a small machine with other work.)

// farm build, the one command for people, runs the lab pipeline: one list
// of two platforms on stdout, and --print says the very pipeline it runs.
func TestFarmBuildRunsThePipeline(t *testing.T) {
	image := "localhost/farm-test/one-command:1"
	args := "--farm lab --node-timeout 2m --platforms linux/amd64,linux/arm64 -t " + image + " --cleanup test/lab/testdata/targetarch"
	p := run(t, nil, "farm build --print "+args)
	want := "farm-nodes --farm lab --timeout 2m0s | farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t " + image +
		" --cleanup --preconnect-farm lab test/lab/testdata/targetarch | farm-manifest"
	if p.code != 0 || strings.TrimSpace(p.stdout) != want {
		t.Fatalf("--print: exit %d\n%s\nwant\n%s", p.code, p.stdout, want)
	}
	r := run(t, nil, "farm build "+args)
	if r.code != 0 {
		t.Fatalf("farm build: exit %d", r.code)
	}
	recs := decode(t, r.stdout)
	if len(recs) != 1 {
		t.Fatalf("want one manifest record, got %d:\n%s", len(recs), r.stdout)
	}
	if m, ok := recs[0].(*record.Manifest); !ok || m.Name != image || len(m.Instances) != 2 {
		t.Fatalf("manifest record %+v", recs[0])
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if got := podman(t, "image", "inspect", image+"-linux-"+arch, "--format", "{{.Architecture}}"); got != arch {
			t.Errorf("%s-linux-%s: architecture %q", image, arch, got)
		}
	}
}

// --plan-with swaps the plan stage for a command of one's own: the example
// scheduler pins arm64 to lab-3, and the images say they were built there.
func TestFarmBuildSwappedPlan(t *testing.T) {
	image := "localhost/farm-test/one-command-pinned:1"
	images := filepath.Join(t.TempDir(), "images.jsonl")
	r := run(t, nil, "farm build --farm lab --node-timeout 2m -t "+image+
		" --plan-with 'scripts/examples/pin-platform.sh linux/arm64=lab-3'"+
		" --manifest-with 'tee "+images+" | farm-manifest' test/lab/testdata/targetarch")
	if r.code != 0 {
		t.Fatalf("farm build: exit %d", r.code)
	}
	data, _ := os.ReadFile(images)
	imgs := imagesOf(decode(t, string(data)))
	if len(imgs) != 1 || imgs["linux/arm64"] == nil || imgs["linux/arm64"].Node != "lab-3" {
		t.Fatalf("want linux/arm64 built on lab-3, got %+v", imgs)
	}
	if m, ok := decode(t, r.stdout)[0].(*record.Manifest); !ok || len(m.Instances) != 1 {
		t.Fatalf("want a list of one, got %s", r.stdout)
	}
	r = run(t, nil, "farm build --farm lab --node-timeout 2m -t "+image+" --platforms linux/arm64 --plan-with cat .")
	if r.code != 2 || !strings.Contains(r.stderr, "--platforms goes to farm-plan, which --plan-with replaces") {
		t.Errorf("a flag for a replaced stage: exit %d, want 2 and why", r.code)
	}
}

// A failing build: the pipeline's exit code (1) and its error records on
// stdout, one per platform, and no list.
func TestFarmBuildFailure(t *testing.T) {
	image := "localhost/farm-test/one-command-fails:1"
	exec.Command("podman", "manifest", "rm", image).Run()
	r := run(t, nil, "farm build --farm lab --node-timeout 2m --platforms linux/amd64,linux/arm64 -t "+image+" test/lab/testdata/fail")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	errs := errorsOf(decode(t, r.stdout))
	if len(errs) != 2 || errs[0].Stage != "farm-build" || !strings.Contains(errs[0].Error, "exit status 3") {
		t.Fatalf("want the 2 error records of farm-build, got %+v", errs)
	}
	if err := exec.Command("podman", "manifest", "inspect", image).Run(); err == nil {
		t.Errorf("a list %s was made", image)
	}
}

// Ctrl-C (SIGINT to farm) interrupts the whole pipeline: exit 130, the RUN
// step on the node is killed, nothing is left in local storage.
func TestFarmBuildInterrupt(t *testing.T) {
	root := repo(t)
	tag := "localhost/farm-test/one-command-cancel:331"
	stderr := filepath.Join(t.TempDir(), "stderr")
	errf, _ := os.Create(stderr)
	defer errf.Close()
	cmd := exec.Command(filepath.Join(root, "bin", "farm"), "build", "--farm", "lab", "--node-timeout", "2m", "-t", tag,
		"--plan-with", "scripts/examples/pin-platform.sh linux/arm64=lab-3",
		"--no-cache", "--build-arg", "SLEEP=331", "test/lab/testdata/slow")
	cmd.Dir, cmd.Stderr = root, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stderr, "sleeping 331s", time.Minute)
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd, time.Minute); code != 130 {
		data, _ := os.ReadFile(stderr)
		t.Fatalf("exit %d, want 130\n%s", code, data)
	}
	noProcess(t, "sleep 331", 5*time.Second)
	if len(psMatches(t, "farm-build -t "+tag)) != 0 {
		t.Errorf("a stage outlived farm")
	}
	if err := exec.Command("podman", "image", "exists", tag+"-linux-arm64").Run(); err == nil {
		t.Errorf("an interrupted run left %s in local storage", tag)
	}
}

// farm-manifest --push --digestfile writes the pushed list's digest, alone,
// as podman manifest push --digestfile does; the registry serves the list
// under that digest. Without a push it is a usage error.
func TestManifestDigestfile(t *testing.T) {
	reg := labVar(t, "FARM_LAB_REGISTRY")
	image := reg + "/farm-test/digestfile:1"
	digest := filepath.Join(t.TempDir(), "digest")
	r := run(t, nil, "farm build --farm lab --node-timeout 2m --platforms linux/amd64 -t "+image+
		" --build-with 'farm-build -t "+image+" test/lab/testdata/targetarch | tee "+digest+".images'"+
		" --manifest-with 'farm-manifest --push docker://"+image+" --tls-verify=false --digestfile "+digest+"' .")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	data, err := os.ReadFile(digest)
	if err != nil || !strings.HasPrefix(string(data), "sha256:") || strings.ContainsAny(string(data), "\n ") {
		t.Fatalf("digest file %q (%v): want the digest alone", data, err)
	}
	m, ok := decode(t, r.stdout)[0].(*record.Manifest)
	if !ok || m.Digest != string(data) {
		t.Errorf("digest file %s, manifest record %+v", data, m)
	}
	if _, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+reg+"/farm-test/digestfile@"+string(data)).Output(); err != nil {
		t.Errorf("the registry has no list %s: %v", data, err)
	}
	r = run(t, nil, "farm-manifest --digestfile "+digest+" < "+digest+".images")
	if r.code != 2 || !strings.Contains(r.stderr, "--digestfile needs --push") {
		t.Errorf("--digestfile without --push: exit %d", r.code)
	}
}
