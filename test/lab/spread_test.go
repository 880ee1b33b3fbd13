//go:build lab

package lab

// Runs spread at dispatch (issue 17, P6): two runs started together with
// the same plan both plan one node before either builds; at dispatch the
// second finds that node claimed by the first and hands its job over to an
// idle alternative.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// TestTwoRunsOfOnePlanSpread: two farm-build runs of one amd64 plan (one of
// lab-1..3 planned, the others its alternatives) started at once build on
// two different nodes, and the one that moved says why, from where and to
// where.
func TestTwoRunsOfOnePlanSpread(t *testing.T) {
	plan := relPlan(t, "linux/amd64")
	jobs := decode(t, relRead(plan))
	if len(jobs) != 1 {
		t.Fatalf("plan: want one job, got %s", relRead(plan))
	}
	job, ok := jobs[0].(*record.Job)
	if !ok || !strings.HasPrefix(job.Node.Name, "lab-") || len(job.Alternatives) < 2 {
		t.Fatalf("plan: want a job on a lab node with two alternatives, got %s", relRead(plan))
	}
	ctxDir := relContext(t, map[string]string{"Containerfile": nonceFile + "RUN sleep 3\n"})
	var runs []*relProc
	var tags []string
	for i := 0; i < 2; i++ {
		nonce := relNonce()
		tag := fmt.Sprintf("localhost/farm-test/spread-%d:%s", i, nonce)
		t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64") })
		relRemoveLocal(t, tag+"-linux-amd64")
		tags = append(tags, tag)
		runs = append(runs, relStart(t, nil, relOpen(t, plan), "farm-build", "-t", tag, "--build-arg", "NONCE="+nonce, ctxDir))
	}
	where := map[string]string{}
	for i, p := range runs {
		if code := p.wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("%s: exit %d", tags[i], code)
		}
		imgs := imagesOf(p.records(t))
		img := imgs["linux/amd64"]
		if len(imgs) != 1 || img == nil {
			t.Fatalf("%s: want one amd64 image, got %s", tags[i], relRead(p.stdout))
		}
		if other, dup := where[img.Node]; dup {
			t.Errorf("%s and %s both built on %s (planned %s): the runs did not spread", other, tags[i], img.Node, job.Node.Name)
		}
		where[img.Node] = tags[i]
		if img.Node != job.Node.Name {
			log := relRead(p.stderr)
			if !strings.Contains(log, "from="+job.Node.Name) || !strings.Contains(log, "to="+img.Node) {
				t.Errorf("%s moved from %s to %s without saying so at info:\n%s", tags[i], job.Node.Name, img.Node, log)
			}
		}
	}
	if _, ok := where[job.Node.Name]; !ok {
		t.Errorf("neither run built on the planned node %s: %v", job.Node.Name, where)
	}
}
