//go:build lab

package lab

// Two users on one farm at once: two builds share the nodes and both
// succeed; two pipelines that write one list name leave one complete list,
// all of one or all of the other, never a mix.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// relListDigests is the platform -> digest map of a local list.
func relListDigests(t *testing.T, name string) map[string]string {
	t.Helper()
	var list struct {
		Manifests []struct {
			Digest   string
			Platform struct{ OS, Architecture string }
		}
	}
	if err := json.Unmarshal([]byte(podman(t, "manifest", "inspect", name)), &list); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range list.Manifests {
		p := e.Platform.OS + "/" + e.Platform.Architecture
		if _, dup := m[p]; dup {
			t.Errorf("list %s names %s twice", name, p)
		}
		m[p] = e.Digest
	}
	return m
}

func relDigestsOf(imgs map[string]*record.Image) map[string]string {
	m := map[string]string{}
	for p, img := range imgs {
		m[p] = img.Digest
	}
	return m
}

func relSame(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Two farm-build runs on one plan at once: the same nodes build both, no
// run disturbs the other's jobs, and each gets its own images back.
func TestTwoBuildsOnOneFarmAtOnce(t *testing.T) {
	plan := relPlan(t, "linux/amd64,linux/arm64")
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile + "RUN sleep 5\n"})
	type runInfo struct {
		p     *relProc
		tag   string
		nonce string
	}
	var runs []runInfo
	for i := 0; i < 2; i++ {
		nonce := relNonce()
		tag := fmt.Sprintf("localhost/farm-test/together-%d:%s", i, nonce)
		t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64", tag+"-linux-arm64") })
		relRemoveLocal(t, tag+"-linux-amd64", tag+"-linux-arm64")
		runs = append(runs, runInfo{relStart(t, nil, relOpen(t, plan), "farm-build", "-t", tag, "--build-arg", "NONCE="+nonce, ctxDir), tag, nonce})
	}
	// Both are building before either is done.
	for _, r := range runs {
		relWaitFor(t, r.p, r.p.stderr, "RUN sleep 5", 2*time.Minute)
	}
	for _, r := range runs {
		if strings.Contains(relRead(r.p.stderr), "done: ") {
			t.Fatalf("%s finished before the other started building: not concurrent", r.tag)
		}
	}
	ids := map[string]string{}
	for _, r := range runs {
		if code := r.p.wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("%s: exit %d", r.tag, code)
		}
		imgs := imagesOf(r.p.records(t))
		if len(imgs) != 2 {
			t.Fatalf("%s: want 2 images, got %s", r.tag, relRead(r.p.stdout))
		}
		for plat, img := range imgs {
			if other, dup := ids[img.ID]; dup {
				t.Errorf("%s and %s got the same image %s", other, r.tag, img.ID[:12])
			}
			ids[img.ID] = r.tag
			// Each image is its own run's: it carries that run's nonce.
			// (podman warns on stderr that arm64 is not this machine's.)
			out := strings.Fields(podman(t, "run", "--rm", "--pull=never", img.Ref))
			if len(out) == 0 || out[len(out)-1] != r.nonce {
				t.Errorf("%s (%s) says %q, want its run's nonce %s", img.Ref, plat, out, r.nonce)
			}
		}
	}
}

// Two whole pipelines write the same list name at once (two CI jobs of one
// tag): both succeed and the list is one of them, whole. Then farm-manifest
// alone, six at once alternating between the two sets: still one whole set.
func TestTwoPipelinesOneListName(t *testing.T) {
	name := "localhost/farm-test/samelist:" + relNonce()
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	dir := t.TempDir()
	var pipes []*relProc
	var images []string
	for i := 0; i < 2; i++ {
		imgs := filepath.Join(dir, fmt.Sprintf("images-%d.jsonl", i))
		images = append(images, imgs)
		script := fmt.Sprintf("set -o pipefail; farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 "+
			"| farm-build -t %s --build-arg NONCE=%s %s | tee %s | farm-manifest", name, relNonce(), ctxDir, imgs)
		pipes = append(pipes, relStart(t, nil, nil, "bash", "-c", script))
	}
	t.Cleanup(func() { relRemoveOnNodes(t, name+"-linux-amd64", name+"-linux-arm64") })
	relRemoveLocal(t, name, name+"-linux-amd64", name+"-linux-arm64")
	var sets []map[string]string
	for i, p := range pipes {
		if code := p.wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("pipeline %d: exit %d", i, code)
		}
		recs := p.records(t)
		m, ok := recs[0].(*record.Manifest)
		if len(recs) != 1 || !ok || len(m.Instances) != 2 {
			t.Fatalf("pipeline %d: want one manifest record of 2: %s", i, relRead(p.stdout))
		}
		sets = append(sets, relDigestsOf(imagesOf(decode(t, relRead(images[i])))))
		got := map[string]string{}
		for _, in := range m.Instances {
			got[in.Platform] = in.Digest
		}
		if !relSame(got, sets[i]) {
			t.Errorf("pipeline %d: its manifest record %v is not its images %v", i, got, sets[i])
		}
	}
	if relSame(sets[0], sets[1]) {
		t.Fatalf("the two pipelines built the same images: the test cannot tell them apart")
	}
	check := func(when string) {
		t.Helper()
		list := relListDigests(t, name)
		if !relSame(list, sets[0]) && !relSame(list, sets[1]) {
			t.Fatalf("%s: list %s is %v: neither %v nor %v", when, name, list, sets[0], sets[1])
		}
	}
	check("after the pipelines")

	var writers []*relProc
	for i := 0; i < 6; i++ {
		writers = append(writers, relStart(t, nil, relOpen(t, images[i%2]), "farm-manifest"))
	}
	for i, w := range writers {
		if code := w.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("farm-manifest %d: exit %d", i, code)
		}
	}
	check("after six writers")
}

// Two and three whole pipelines with different tags on one farm at once,
// the third interrupted mid-build: every finished pipeline's list pushes
// with `podman manifest push --all`, and each platform of the pushed list,
// pulled back from the registry, runs and says its own run's nonce; the
// interrupted run leaves no list.
func TestConcurrentPipelinesDifferentTags(t *testing.T) {
	registry := labVar(t, "FARM_LAB_REGISTRY")
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile})
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d pipelines", n), func(t *testing.T) {
			type pipe struct {
				p           *relProc
				name, nonce string
			}
			var pipes []pipe
			for i := 0; i < 2; i++ {
				nonce := relNonce()
				name := fmt.Sprintf("localhost/farm-test/together-%d:%s", i, nonce)
				t.Cleanup(func() { relRemoveOnNodes(t, name+"-linux-amd64", name+"-linux-arm64") })
				pipes = append(pipes, pipe{relStart(t, nil, nil, "bash", "-c", fmt.Sprintf("set -o pipefail; farm-nodes --farm lab --timeout 60s "+
					"| farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t %s --build-arg NONCE=%s %s | farm-manifest", name, nonce, ctxDir)), name, nonce})
			}
			if n == 3 {
				split := relContext(t, map[string]string{"Containerfile": relSplitContainerfile})
				nonce := relNonce()
				name := "localhost/farm-test/together-interrupted:" + nonce
				t.Cleanup(func() { relRemoveOnNodes(t, name+"-linux-amd64") })
				third := relStart(t, nil, relOpen(t, relPins(t, "linux/amd64=lab-1", "linux/arm64=lab-2")), "farm-build", "--progress", "plain", "-t", name, "--build-arg", "NONCE="+nonce, split)
				relWaitFor(t, third, third.stderr, "sleeping-"+nonce, 4*time.Minute)
				third.cmd.Process.Signal(syscall.SIGINT)
				if code := third.wait(t, time.Minute); code != 130 {
					t.Fatalf("the interrupted run: exit %d, want 130", code)
				}
				if exec.Command("podman", "manifest", "exists", name).Run() == nil {
					t.Errorf("the interrupted run left a list")
				}
			}
			for _, p := range pipes {
				if code := p.p.wait(t, 6*time.Minute); code != 0 {
					t.Fatalf("%s: exit %d", p.name, code)
				}
				dest := registry + "/farm-test/together:" + relNonce()
				if out, err := exec.Command("podman", "manifest", "push", "--all", "--tls-verify=false", p.name, "docker://"+dest).CombinedOutput(); err != nil {
					t.Fatalf("%s does not push: %v\n%s", p.name, err, out)
				}
				for _, arch := range []string{"amd64", "arm64"} {
					out, err := exec.Command("podman", "run", "--rm", "--tls-verify=false", "--platform", "linux/"+arch,
						"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", dest).Output()
					if f := strings.Fields(string(out)); err != nil || len(f) == 0 || f[len(f)-1] != p.nonce {
						t.Errorf("%s from the registry on %s: %v, says %q, want %s", dest, arch, err, out, p.nonce)
					}
				}
				exec.Command("podman", "rmi", dest).Run()
				relRemoveLocal(t, p.name)
			}
		})
	}
}
