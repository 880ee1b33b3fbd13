//go:build lab

package lab

// Lab tests of the plan stage: farm-plan and the example custom plan stage
// scripts/examples/pin-platform.sh, fed by the real farm-nodes talking to the
// lab farm. The helpers here are prefixed "plan" and self-contained, so this
// file does not depend on lab_test.go's.

import (
	"io"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/record"
)

// planPipe runs a bash pipeline with pipefail, so a failing farm-nodes is
// not hidden.
func planPipe(t *testing.T, pipeline string) (stdout, stderr string, code int) {
	t.Helper()
	r := run(t, nil, "set -o pipefail; "+pipeline)
	return r.stdout, r.stderr, r.code
}

// planJobs decodes a stream that must hold job records only: an error
// record here means the lab is not fully up or a stage failed.
func planJobs(t *testing.T, stream string) []*record.Job {
	t.Helper()
	var jobs []*record.Job
	dec := record.NewDecoder("test", strings.NewReader(stream))
	for {
		rec, err := dec.Next()
		if err == io.EOF {
			return jobs
		}
		if err != nil {
			t.Fatalf("%v\n%s", err, stream)
		}
		switch r := rec.(type) {
		case *record.Job:
			jobs = append(jobs, r)
		case *record.Error:
			t.Fatalf("error record from %s: %s (is the lab up? scripts/farm-lab status)", r.Stage, r.Error)
		default:
			t.Fatalf("unexpected %s record:\n%s", r.Kind(), stream)
		}
	}
}

func planNames(nodes []record.Node) []string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return names
}

// The lab's nodes are all amd64 and emulate arm64: pinning arm64 to lab-3
// is an emulated job with the two other nodes to fail over to.
func TestPlanPinPlatformScript(t *testing.T) {
	stdout, _, code := planPipe(t, "farm-nodes --farm lab | scripts/examples/pin-platform.sh linux/arm64=lab-3")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	jobs := planJobs(t, stdout)
	if len(jobs) != 1 {
		t.Fatalf("%d job records, want 1:\n%s", len(jobs), stdout)
	}
	job := jobs[0]
	if job.Platform != "linux/arm64" || job.Node.Name != "lab-3" || !job.Emulated {
		t.Errorf("job %s on %s (emulated %v), want linux/arm64 on lab-3, emulated", job.Platform, job.Node.Name, job.Emulated)
	}
	if job.Node.URI == "" {
		t.Error("the job's node record has no uri: farm-build could not reach it")
	}
	if got := strings.Join(planNames(job.Alternatives), ","); got != "lab-1,lab-2" {
		t.Errorf("alternatives %s, want lab-1,lab-2", got)
	}
}

func TestPlanPinPlatformScriptRefusesAnUnknownNode(t *testing.T) {
	stdout, stderr, code := planPipe(t, "farm-nodes --farm lab | scripts/examples/pin-platform.sh linux/arm64=lab-99")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if strings.Contains(stdout, `"kind":"job"`) {
		t.Errorf("wrote a job for an unknown node:\n%s", stdout)
	}
	if !strings.Contains(stderr, "pin-platform.sh: linux/arm64=lab-99: no node lab-99 on stdin") {
		t.Errorf("stderr does not name the unknown node:\n%s", stderr)
	}
}

// Two platforms on three idle nodes go to two different nodes: amd64
// natively, arm64 by emulation, each with the rest as alternatives.
func TestPlanLabTwoPlatforms(t *testing.T) {
	pipeline := "farm-nodes --farm lab | farm-plan --platforms linux/amd64,arm64"
	stdout, _, code := planPipe(t, pipeline)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	jobs := planJobs(t, stdout)
	if len(jobs) != 2 {
		t.Fatalf("%d job records, want 2:\n%s", len(jobs), stdout)
	}
	amd64, arm64 := jobs[0], jobs[1]
	if amd64.Platform != "linux/amd64" || amd64.Emulated || arm64.Platform != "linux/arm64" || !arm64.Emulated {
		t.Errorf("jobs %s (emulated %v), %s (emulated %v): want linux/amd64 native, linux/arm64 emulated",
			amd64.Platform, amd64.Emulated, arm64.Platform, arm64.Emulated)
	}
	if amd64.Node.Name == arm64.Node.Name {
		t.Errorf("both platforms on %s while a lab node is idle", amd64.Node.Name)
	}
	for _, job := range jobs {
		if len(job.Alternatives) != 2 {
			t.Errorf("%s on %s: alternatives %v, want the 2 other lab nodes", job.Platform, job.Node.Name, planNames(job.Alternatives))
		}
		for _, alt := range job.Alternatives {
			if alt.Name == job.Node.Name {
				t.Errorf("%s: chosen node %s is also an alternative", job.Platform, alt.Name)
			}
		}
	}

	// The same farm gives the same plan. The nodes' load is not the same
	// from one farm-nodes to the next (other runs build on the lab, the
	// load average moves): plan both times from records without it.
	still := "farm-nodes --farm lab | jq -c 'del(.load)' | farm-plan --platforms linux/amd64,arm64"
	first, _, code := planPipe(t, still)
	again, _, code2 := planPipe(t, still)
	if code != 0 || code2 != 0 || again != first {
		t.Errorf("a second run (exit %d, %d) planned differently:\n%s\nfirst:\n%s", code, code2, again, first)
	}
}

func TestPlanLabPipedIntoItself(t *testing.T) {
	stdout, stderr, code := planPipe(t, "farm-nodes --farm lab | farm-plan | farm-plan")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if strings.Contains(stdout, `"kind":"job"`) {
		t.Errorf("wrote jobs:\n%s", stdout)
	}
	if !strings.Contains(stderr, "farm-plan: stdin line 1: a job record; farm-plan reads node records (did you pipe farm-plan into itself?)") {
		t.Errorf("stderr does not explain:\n%s", stderr)
	}
}
