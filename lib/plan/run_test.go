package plan

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// testLogger logs like farm-plan does, without the time, so that stderr can
// be compared with a golden file.
func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// run runs farm-plan on input ended as farm-nodes ends it, with an end
// record (see runRaw).
func run(t *testing.T, input string, opts Options) (stdout, stderr string, err error) {
	t.Helper()
	return runRaw(t, input+nodesEnd+"\n", opts)
}

func runRaw(t *testing.T, input string, opts Options) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Run(context.Background(), opts, strings.NewReader(input), &out, &errOut, testLogger(&errOut))
	return out.String(), errOut.String(), err
}

// kinds lists the kind of each record written, so tests can say "no job
// records" precisely.
func kinds(t *testing.T, stdout string) []string {
	t.Helper()
	var out []string
	dec := record.NewDecoder("test", strings.NewReader(stdout))
	for {
		rec, err := dec.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("farm-plan wrote a bad record stream: %v\n%s", err, stdout)
		}
		out = append(out, rec.Kind())
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name, input string
		opts        Options
	}{
		{"lab-default", "lab", Options{}},
		{"lab-amd64-arm64", "lab", Options{Platforms: plats(t, "linux/amd64,arm64")}},
		{"lab-three-platforms-affinity", "lab", Options{Platforms: plats(t, "amd64,arm64,arm/v7"), Affinity: "quay.io/me/app"}},
		{"mixed-default", "mixed", Options{}},
		{"mixed-affinity", "mixed", Options{Platforms: plats(t, "amd64,arm64/v8,arm,386,s390x,ppc64le,riscv64"), Affinity: "quay.io/me/app"}},
		{"mixed-never", "mixed", Options{Platforms: plats(t, "amd64,arm64,arm/v7"), Emulation: EmulationNever}},
		// Another run's builds, a saturated machine, a node whose builds
		// cannot be stopped, one short of storage: four amd64 jobs.
		{"shared-four", "shared", Options{Platforms: plats(t, "amd64,arm64,386,s390x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join("testdata", tt.input+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			tt.opts.Explain = true
			stdout, stderr, err := run(t, string(input), tt.opts)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			golden(t, tt.name+".golden", stdout)
			golden(t, tt.name+".stderr.golden", stderr)
		})
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it after review)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

const (
	nodeA   = `{"v":1,"kind":"node","name":"a","uri":"ssh://a","identity":"","native":["linux/amd64"],"emulated":["linux/arm64"],"cpus":4,"memory":0,"podman":"4.9.3","error":""}`
	nodeB   = `{"v":1,"kind":"node","name":"b","uri":"ssh://b","identity":"","native":["linux/arm64"],"emulated":[],"cpus":4,"memory":0,"podman":"4.9.3","error":""}`
	nodeBad = `{"v":1,"kind":"node","name":"c","uri":"ssh://c","identity":"","native":["linux/amd46"],"emulated":[],"cpus":4,"memory":0,"podman":"4.9.3","error":""}`
	upErr   = `{"v":1,"kind":"error","stage":"farm-nodes","error":"ssh: connection refused","node":"d","hint":"check the VPN"}`
	aJob    = `{"v":1,"kind":"job","platform":"linux/amd64","node":{"v":1,"kind":"node","name":"a"},"emulated":false,"alternatives":[]}`
	anImage = `{"v":1,"kind":"image","platform":"linux/amd64","node":"a","id":"sha256:1"}`
	aList   = `{"v":1,"kind":"manifest","name":"app","instances":[]}`
	// nodesEnd ends a complete stream from farm-nodes; planEnd farm-plan's.
	nodesEnd = `{"v":1,"kind":"end","stage":"farm-nodes"}`
	planEnd  = `{"v":1,"kind":"end","stage":"farm-plan"}`
)

// TestRunTruncatedInput: farm-nodes died after some node records (no end
// record): farm-plan plans nothing, says why in an error record, and still
// ends its own stream, which is complete: it holds the error.
func TestRunTruncatedInput(t *testing.T) {
	for _, input := range []string{nodeA + "\n", upErr + "\n" + nodeA + "\n" + nodeB + "\n"} {
		stdout, _, err := runRaw(t, input, Options{})
		if err == nil || !strings.Contains(err.Error(), "without an end record") {
			t.Fatalf("error %v, want one saying the input has no end record", err)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		last := lines[len(lines)-1]
		if strings.Contains(stdout, `"kind":"job"`) || !strings.Contains(lines[len(lines)-2], "without an end record") || last != planEnd {
			t.Errorf("want the error record and the end record, no job:\n%s", stdout)
		}
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		input string
		opts  Options
		// err is the whole error message as farm-plan prints it.
		err string
		// kinds of the records written, in order.
		kinds []string
		// stderr holds this, when set.
		stderr string
	}{
		{
			name:  "plan",
			input: nodeA + "\n" + nodeB + "\n",
			kinds: []string{"job", "job"},
		},
		{
			name:  "error records pass through, first",
			input: nodeA + "\n" + upErr + "\n" + nodeB + "\n",
			kinds: []string{"error", "job", "job"},
		},
		{
			name:   "unreachable nodes are skipped with a warning",
			input:  nodeA + "\n" + `{"v":1,"kind":"node","name":"d","uri":"ssh://u:pw@d","error":"connection refused"}` + "\n",
			kinds:  []string{"job"},
			stderr: `level=WARN msg="skipping unreachable node" node=d uri=ssh://u:xxxxx@d error="connection refused"`,
		},
		{
			name:   "emulated jobs are announced",
			input:  nodeA + "\n",
			opts:   Options{Platforms: plats(t, "arm64")},
			kinds:  []string{"job"},
			stderr: `level=INFO msg="building by emulation: no reachable node builds this platform natively" platform=linux/arm64 node=a`,
		},
		{
			name:  "a job record",
			input: nodeA + "\n" + upErr + "\n\n" + aJob + "\n" + nodeB + "\n",
			err:   "farm-plan: stdin line 4: a job record; farm-plan reads node records (did you pipe farm-plan into itself?)",
			kinds: []string{"error", "error"},
		},
		{
			name:  "an image record",
			input: nodeA + "\n" + anImage + "\n",
			err:   "farm-plan: stdin line 2: an image record; farm-plan reads node records (farm-plan goes right after farm-nodes: farm-nodes | farm-plan | farm-build)",
			kinds: []string{"error"},
		},
		{
			name:  "a manifest record",
			input: aList + "\n",
			err:   "farm-plan: stdin line 1: a manifest record; farm-plan reads node records (farm-plan goes right after farm-nodes: farm-nodes | farm-plan | farm-build)",
			kinds: []string{"error"},
		},
		{
			name:  "empty input",
			input: "",
			err:   "no node records on stdin; farm-plan reads what farm-nodes writes: farm-nodes | farm-plan",
			kinds: []string{"error"},
		},
		{
			name:  "only error records",
			input: upErr + "\n",
			err:   "no node records on stdin; farm-plan reads what farm-nodes writes: farm-nodes | farm-plan",
			kinds: []string{"error", "error"},
		},
		{
			name:  "malformed line",
			input: nodeA + "\n" + `{"v":1,"kind":"node","name":` + "\n",
			err:   "farm-plan: stdin line 2: invalid JSON: unexpected end of JSON input (at byte 28)",
			kinds: []string{"error"},
		},
		{
			name:  "unknown platform in a node record",
			input: nodeA + "\n\n" + nodeBad + "\n",
			err:   `farm-plan: stdin line 3: node "c": native platform "linux/amd46": unknown architecture "amd46"`,
			kinds: []string{"error"},
		},
		{
			name:  "a platform no node can build",
			input: upErr + "\n" + nodeA + "\n" + nodeB + "\n",
			opts:  Options{Platforms: plats(t, "amd64,riscv64,s390x")},
			err: "cannot place linux/riscv64: no reachable node builds it natively or by emulation\n" +
				"farm-plan: cannot place linux/s390x: no reachable node builds it natively or by emulation\n" +
				"farm-plan: nodes considered: a (native: linux/amd64; emulated: linux/arm64), b (native: linux/arm64; emulated: none)",
			kinds: []string{"error", "error", "error"},
		},
		{
			name:  "emulation never",
			input: nodeA + "\n",
			opts:  Options{Platforms: plats(t, "arm64"), Emulation: EmulationNever},
			err: "cannot place linux/arm64: no reachable node builds it natively, and --emulation=never forbids emulating it on a\n" +
				"farm-plan: nodes considered: a (native: linux/amd64; emulated: linux/arm64)",
			kinds: []string{"error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := run(t, tt.input, tt.opts)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.err != "" && err == nil:
				t.Fatalf("no error; stdout:\n%s", stdout)
			case tt.err != "" && err.Error() != tt.err:
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.err)
			}
			if got := kinds(t, stdout); strings.Join(got, " ") != strings.Join(tt.kinds, " ") {
				t.Errorf("wrote %v, want %v:\n%s", got, tt.kinds, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr:\n%s\nwant it to hold:\n%s", stderr, tt.stderr)
			}
			if strings.Contains(tt.input, upErr) && !strings.Contains(stdout, upErr+"\n") {
				t.Errorf("the upstream error record was not passed on unchanged:\n%s", stdout)
			}
		})
	}
}

// TestRunErrorRecords: the error records farm-plan writes name the line or
// the platform, for whoever reads the end of the pipeline.
func TestRunErrorRecords(t *testing.T) {
	stdout, _, _ := run(t, nodeA+"\n"+aJob+"\n", Options{})
	want := `{"v":1,"kind":"error","stage":"farm-plan","error":"a job record; farm-plan reads node records (did you pipe farm-plan into itself?)","line":2}` + "\n" + planEnd + "\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	stdout, _, _ = run(t, nodeA+"\n", Options{Platforms: plats(t, "s390x")})
	want = `{"v":1,"kind":"error","stage":"farm-plan","error":"linux/s390x: no reachable node builds it natively or by emulation; ` +
		`nodes considered: a (native: linux/amd64; emulated: linux/arm64)","platform":"linux/s390x"}` + "\n" + planEnd + "\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}

// chanWriter hands every Write to a channel, so a test can see what was
// written while the input is still open.
type chanWriter chan string

func (c chanWriter) Write(p []byte) (int, error) {
	c <- string(p)
	return len(p), nil
}

// TestRunPassesErrorsAtOnce: an error record is passed on when it arrives,
// not after the input ends: the stage at the end of the pipeline can report
// an unreachable node while farm-nodes is still waiting for a slow one.
func TestRunPassesErrorsAtOnce(t *testing.T) {
	in, feed := io.Pipe()
	out := make(chanWriter, 10)
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{}, in, out, io.Discard, testLogger(io.Discard))
	}()
	if _, err := io.WriteString(feed, upErr+"\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		if got != upErr+"\n" {
			t.Errorf("wrote %q, want the error record", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the error record was not passed on before the input ended")
	}
	if _, err := io.WriteString(feed, nodeA+"\n"+nodesEnd+"\n"); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := <-out; !strings.Contains(got, `"kind":"job"`) {
		t.Errorf("then wrote %q, want the job", got)
	}
	if got := <-out; got != planEnd+"\n" {
		t.Errorf("then wrote %q, want the end record", got)
	}
}
