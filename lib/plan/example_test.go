package plan

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/record"
)

// TestPinPlatformExample runs scripts/examples/pin-platform.sh, the custom
// plan stage docs/custom-scheduler.md shows, on the lab's node records: its
// jobs must be records farm-build reads like farm-plan's.
func TestPinPlatformExample(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("pin-platform.sh needs jq: install it (scripts/farm-lab up installs it)")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "examples", "pin-platform.sh"))
	if err != nil {
		t.Fatal(err)
	}
	lab, err := os.ReadFile(filepath.Join("testdata", "lab.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	upstream := `{"v":1,"kind":"error","stage":"farm-nodes","error":"ssh: connection refused","node":"lab-4"}` + "\n"
	pin := func(input string, args ...string) (string, string, int) {
		cmd := exec.Command("sh", append([]string{script}, args...)...)
		cmd.Stdin = strings.NewReader(input)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}

	stdout, stderr, code := pin(upstream+string(lab), "linux/arm64=lab-3", "linux/amd64=lab-1")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	dec := record.NewDecoder("test", strings.NewReader(stdout))
	var recs []record.Record
	for {
		rec, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 3 || recs[0].Kind() != record.KindError || !dec.Ended() {
		t.Fatalf("want the error record passed on, then two jobs, then the end record:\n%s", stdout)
	}
	// farm-nodes died part way: no end record, no plan.
	truncated := strings.TrimSuffix(string(lab), `{"v":1,"kind":"end","stage":"farm-nodes"}`+"\n")
	if truncated == string(lab) {
		t.Fatal("testdata/lab.jsonl does not end with farm-nodes' end record")
	}
	if stdout, stderr, code := pin(truncated, "linux/amd64=lab-1"); code != 1 || strings.Contains(stdout, `"kind":"job"`) ||
		!strings.Contains(stderr, "stdin ended without an end record") {
		t.Errorf("truncated input: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for i, want := range []struct {
		platform, node string
		emulated       bool
		alternatives   string
	}{
		{"linux/arm64", "lab-3", true, "lab-1,lab-2"},
		{"linux/amd64", "lab-1", false, "lab-2,lab-3"},
	} {
		job, ok := recs[i+1].(*record.Job)
		if !ok {
			t.Fatalf("record %d is a %s record", i+2, recs[i+1].Kind())
		}
		var alts []string
		for _, a := range job.Alternatives {
			alts = append(alts, a.Name)
		}
		if job.Platform != want.platform || job.Node.Name != want.node || job.Emulated != want.emulated ||
			strings.Join(alts, ",") != want.alternatives || job.Node.URI == "" {
			t.Errorf("job %s on %s (emulated %v, alternatives %v), want %+v", job.Platform, job.Node.Name, job.Emulated, alts, want)
		}
	}

	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"linux/arm64=lab-9"}, 1, "pin-platform.sh: linux/arm64=lab-9: no node lab-9 on stdin (nodes: lab-1, lab-2, lab-3)\n"},
		{[]string{"linux/mips=lab-1"}, 1, "pin-platform.sh: linux/mips=lab-1: node lab-1 neither builds nor emulates linux/mips"},
		{[]string{"arm64=lab-1"}, 2, `pin-platform.sh: "arm64" is not a canonical platform`},
		{[]string{"linux/arm64/v8=lab-1"}, 2, `pin-platform.sh: "linux/arm64/v8" is not a canonical platform`},
		{[]string{"lab-1"}, 2, `pin-platform.sh: "lab-1": want PLATFORM=NODE`},
		{nil, 2, "usage: farm-nodes | pin-platform.sh PLATFORM=NODE"},
	} {
		stdout, stderr, code := pin(upstream+string(lab), tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit %d and:\n%s", tt.args, code, stderr, tt.code, tt.stderr)
		}
		if strings.Contains(stdout, `"kind":"job"`) {
			t.Errorf("%v: wrote a job:\n%s", tt.args, stdout)
		}
	}
}
