//go:build lab

package lab

// A farm shared by many runs: what one run does must never undo another's.
// Each test here has its row in docs/reliability.md.

import (
	"fmt"
	"os/exec"
	"path/filepath"
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
// its amd64 image took the per-platform tag: whichever list is left, its
// per-platform tags name its very images (every member tagged, so `podman
// image prune` keeps them), it pushes with `podman manifest push --all`,
// and both members run.
func TestSameTagRunsLeaveOneConsistentState(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d runs", n), func(t *testing.T) {
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
			if n == 3 {
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
			for i, p := range pipes {
				if code := p.wait(t, 5*time.Minute); code != 0 {
					t.Fatalf("pipeline %d: exit %d", i, code)
				}
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
