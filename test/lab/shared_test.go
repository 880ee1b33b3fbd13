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
