//go:build lab

package lab

// Bad input, every stage that reads records: each bad stream gets a message
// naming the stage and the line, a non-zero exit, and nothing after the bad
// line: no job, image or manifest record, only (farm-plan, farm-build) the
// one error record that describes the bad input. The stages run as the real
// binaries in bin/; none of these inputs gets as far as a node.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// badStage is one stage under test and the records it is fed.
type badStage struct {
	name string
	args []string
	// good is a record of the kind the stage reads; one goes before the bad
	// line (where that has no side effect) and one after it.
	before, after string
	// wrongType is a record of the stage's kind with a field of the wrong
	// type, and wrongTypeMsg what the stage must say about it.
	wrongType, wrongTypeMsg string
	// wrongKinds are records of kinds the stage does not read.
	wrongKinds []string
	// empty is what the stage says about an empty stdin.
	empty string
	// errorRecord: the stage writes the input error as an error record.
	errorRecord bool
}

// passed is an error record from upstream: every stage passes it on, so
// its reappearance after the bad line would show the stage read on.
const (
	upstreamBefore = `{"v":1,"kind":"error","stage":"farm-test","error":"UPSTREAM-BEFORE"}`
	upstreamAfter  = `{"v":1,"kind":"error","stage":"farm-test","error":"UPSTREAM-AFTER-THE-BAD-LINE"}`
)

func badStages(t *testing.T) []badStage {
	node := `{"v":1,"kind":"node","name":"lab-1","uri":"` + labVar(t, "FARM_LAB_1_URI") + `","identity":"` + labVar(t, "FARM_LAB_KEY") +
		`","native":["linux/amd64"],"emulated":["linux/arm64"],"cpus":2,"memory":1000000000,"podman":"4.3.1","error":""}`
	// A job that would really build on lab-1 if farm-build read past the
	// bad line.
	job := `{"v":1,"kind":"job","platform":"linux/amd64","node":` + node + `,"emulated":false,"alternatives":[]}`
	image := `{"v":1,"kind":"image","platform":"linux/amd64","node":"lab-1","id":"3f5e2a9c8b1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f",` +
		`"digest":"sha256:9b2a6c1d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b","tag":"localhost/farm-test/bad:1","ref":"localhost/farm-test/bad:1-linux-amd64",` +
		`"emulated":false,"size":1,"build_seconds":1,"transfer_seconds":1,"transfer":"archive","bytes_in":1,"bytes_out":1}`
	manifest := `{"v":1,"kind":"manifest","name":"x","id":"y","digest":"sha256:aa","instances":[]}`
	ctxDir := relContext(t, map[string]string{"Containerfile": "FROM localhost/busybox:amd64\nRUN echo built\n"})
	return []badStage{
		{
			name: "farm-plan", before: node, after: node,
			wrongType:    `{"v":1,"kind":"node","name":"n","cpus":"four"}`,
			wrongTypeMsg: `node record: field "cpus": want integer, got string`,
			wrongKinds:   []string{image, job, manifest},
			empty:        "no node records on stdin",
			errorRecord:  true,
		},
		{
			name: "farm-build", args: []string{"-t", "localhost/farm-test/bad:1", ctxDir},
			// Before the bad line only an error record; a job there
			// starts no build either (TestBadLineBeforeThePlanEndsBuildsNothing).
			before: upstreamBefore, after: job,
			wrongType:    `{"v":1,"kind":"job","platform":"linux/amd64","node":{"name":"lab-1","cpus":"two"}}`,
			wrongTypeMsg: `job record: field "node.cpus": want integer, got string`,
			wrongKinds:   []string{node, image, manifest},
			empty:        "no job records on stdin",
			errorRecord:  true,
		},
		{
			name: "farm-manifest", before: image, after: image,
			wrongType:    strings.Replace(image, `"size":1`, `"size":"big"`, 1),
			wrongTypeMsg: `image record: field "size": want integer, got string`,
			wrongKinds:   []string{node, job, manifest},
			empty:        "no image records on stdin",
		},
	}
}

// badCase is one bad stream: lines before the bad one, the bad line, lines
// after it.
type badCase struct {
	name  string
	input []byte
	line  int    // the bad line (0: no line to name)
	want  string // in the message
}

func badCases(st badStage) []badCase {
	head := st.before + "\n" + upstreamBefore + "\n"
	if st.before == upstreamBefore {
		head = upstreamBefore + "\n"
	}
	headLines := strings.Count(head, "\n")
	tail := "\n" + st.after + "\n" + upstreamAfter + "\n"
	bad := func(name, line, want string) badCase {
		return badCase{name: name, input: []byte(head + line + tail), line: headLines + 1, want: want}
	}
	garbage := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	garbage[0], garbage[1] = 0xff, 0xfe // never a blank first line, never UTF-8
	long := `{"v":1,"kind":"node","name":"` + strings.Repeat("a", 10<<20) + `"}`
	truncated := st.after[:len(st.after)/2]

	cases := []badCase{
		{name: "empty stdin", input: nil, want: st.empty},
		{name: "only blank lines", input: []byte("\n  \n\t\n"), want: st.empty},
		bad("binary garbage", string(garbage), "not UTF-8 text"),
		bad("10 MB line", long, "line longer than 4194304 bytes"),
		{name: "truncated last line", input: []byte(head + truncated), line: headLines + 1, want: "invalid JSON"},
		bad("not an object", `[1,2,3]`, "want a JSON object, got array"),
		bad("wrong v", strings.Replace(st.after, `"v":1`, `"v":2`, 1), `unsupported record version "v": 2`),
		bad("v as a string", strings.Replace(st.after, `"v":1`, `"v":"1"`, 1), `unsupported record version "v": "1"`),
		bad("missing v", strings.Replace(st.after, `"v":1,`, ``, 1), `missing "v"`),
		bad("unknown kind", `{"v":1,"kind":"nod","name":"x"}`, `unknown kind "nod"`),
		bad("missing kind", `{"v":1,"name":"x"}`, `missing "kind"`),
		bad("kind not a string", `{"v":1,"kind":3}`, `"kind" must be a string, got 3`),
		bad("field of the wrong type", st.wrongType, st.wrongTypeMsg),
	}
	for _, wk := range st.wrongKinds {
		kind := wk[strings.Index(wk, `"kind":"`)+8:]
		kind = kind[:strings.IndexByte(kind, '"')]
		cases = append(cases, bad("a "+kind+" record", wk, kind+" record; "+st.name+" reads "))
	}
	return cases
}

func TestBadInputEveryStage(t *testing.T) {
	for _, st := range badStages(t) {
		for _, tc := range badCases(st) {
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				in := filepath.Join(t.TempDir(), "in")
				if err := os.WriteFile(in, tc.input, 0o600); err != nil {
					t.Fatal(err)
				}
				p := relStart(t, nil, relOpen(t, in), st.name, st.args...)
				code := p.wait(t, time.Minute)
				stderr, stdout := relRead(p.stderr), relRead(p.stdout)
				if code != 1 {
					t.Errorf("exit %d, want 1", code)
				}
				prefix := st.name + ": "
				if tc.line > 0 {
					prefix = fmt.Sprintf("%s: stdin line %d: ", st.name, tc.line)
				}
				if !strings.Contains(stderr, prefix) || !strings.Contains(stderr, tc.want) {
					t.Errorf("stderr should say %q ... %q:\n%s", prefix, tc.want, stderr)
				}
				if len(stderr) > 64<<10 {
					t.Errorf("stderr is %d bytes: the bad line must not be echoed", len(stderr))
				}
				// What came out: error records passed on from before the
				// bad line, then at most the stage's own about the input.
				var inputErr *record.Error
				for i, rec := range decode(t, stdout) {
					e, ok := rec.(*record.Error)
					switch {
					case !ok:
						t.Errorf("output record %d is a %s record: nothing may be built from bad input", i+1, rec.Kind())
					case inputErr != nil:
						t.Errorf("a record after the one about the bad input: %+v", e)
					case e.Stage == "farm-test" && e.Error == "UPSTREAM-BEFORE":
					case e.Stage == st.name:
						inputErr = e
					default:
						t.Errorf("unexpected record %+v (from after the bad line?)", e)
					}
				}
				if st.errorRecord {
					if inputErr == nil {
						t.Fatalf("want an error record describing the bad input:\n%s", stdout)
					}
					if inputErr.Line != tc.line || !strings.Contains(inputErr.Error, tc.want) {
						t.Errorf("error record %+v: want line %d and %q", inputErr, tc.line, tc.want)
					}
					if len(inputErr.Error) > 4096 {
						t.Errorf("the error record is %d bytes: the bad line must not be copied into it", len(inputErr.Error))
					}
				} else if inputErr != nil {
					t.Errorf("%s writes no error record of its own: %+v", st.name, inputErr)
				}
			})
		}
	}
}

// A bad line before the plan's end record: farm-build has started no build
// (it builds only from a whole plan), writes nothing but the error record
// about the line and its end record, and exits 1.
func TestBadLineBeforeThePlanEndsBuildsNothing(t *testing.T) {
	plan, err := os.ReadFile(pinnedJob(t, "linux/amd64", "lab-1"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(plan)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"kind":"end"`) {
		t.Fatalf("want a job and the end record:\n%s", plan)
	}
	sleep := "331"
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tag := "localhost/farm-test/badline:1"
	p := relStart(t, nil, r, "farm-build", "--log-level", "debug", "-t", tag, "--no-cache", "--build-arg", "SLEEP="+sleep, "test/lab/testdata/slow")
	r.Close()
	if _, err := w.Write([]byte(lines[0])); err != nil {
		t.Fatal(err)
	}
	relWaitFor(t, p, p.stderr, "build context ready", time.Minute)
	time.Sleep(3 * time.Second) // time enough to start a build, if it would
	if strings.Contains(relRead(p.stderr), "msg=building") {
		t.Fatalf("a build started before the plan ended:\n%s", relRead(p.stderr))
	}
	w.Write([]byte("{\"v\":1,\"kind\":\"job\",\"platform\":\n"))
	w.Close()
	if code := p.wait(t, time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	recs := p.records(t)
	if len(recs) != 1 || !ended(relRead(p.stdout)) {
		t.Fatalf("want only the error record about line 2 and the end record, got %s", relRead(p.stdout))
	}
	if e, ok := recs[0].(*record.Error); !ok || e.Line != 2 || !strings.Contains(e.Error, "farm-build: stdin line 2: invalid JSON") {
		t.Fatalf("want the error record about line 2, got %+v", recs[0])
	}
	if strings.Contains(relRead(p.stderr), "msg=building") || strings.Contains(relRead(p.stderr), "sleeping "+sleep) {
		t.Errorf("a build started from a bad plan")
	}
	if where := relFindImage(t, "", tag+"-linux-amd64"); len(where) != 0 {
		t.Errorf("images from a bad plan: %v", where)
	}
}
