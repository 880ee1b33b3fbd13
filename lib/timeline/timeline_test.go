package timeline

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

var update = flag.Bool("update", false, "rewrite testdata/*.svg and *.html from the current renderer")

func readRecords(t *testing.T, name string) []record.Record {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record.Record
	dec := record.NewDecoder("test", f)
	for {
		r, err := dec.Next()
		if err != nil {
			if !dec.Ended() {
				t.Fatalf("%s: %v", name, err)
			}
			return recs
		}
		recs = append(recs, r)
	}
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		file            string
		rows            string // key=outcome, top to bottom
		wall, bound     time.Duration
		critical        string
		images, errors  int
		criticalPhases  int // bars outlined as the critical path, context included
		contextDuration time.Duration
	}{
		{file: "failover.jsonl",
			rows: "linux/amd64@x86=image linux/arm/v7@arm1=failed linux/arm64@arm1=failed over linux/arm64@arm2=image linux/s390x@z1=failed",
			wall: 54850 * time.Millisecond,
			// the context, then arm64's phases on arm1 and arm2 back to back
			bound:    250*time.Millisecond + 9250*time.Millisecond + 45350*time.Millisecond,
			critical: "linux/arm64", images: 2, errors: 2, criticalPhases: 8, contextDuration: 250 * time.Millisecond},
		{file: "push.jsonl", rows: "linux/amd64@lab-1=image", wall: 3400 * time.Millisecond, bound: 3400 * time.Millisecond,
			critical: "linux/amd64", images: 1, criticalPhases: 6, contextDuration: 100 * time.Millisecond},
	} {
		t.Run(tc.file, func(t *testing.T) {
			tl, err := New(readRecords(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var rows []string
			critical := 0
			for _, r := range tl.Rows {
				rows = append(rows, r.Key()+"="+r.Outcome)
				for _, b := range r.Bars {
					if b.Critical {
						critical++
					}
				}
			}
			if tl.Context.Critical {
				critical++
			}
			if got := strings.Join(rows, " "); got != tc.rows {
				t.Errorf("rows\n got %s\nwant %s", got, tc.rows)
			}
			if tl.Wall != tc.wall || tl.Bound != tc.bound || tl.Critical != tc.critical {
				t.Errorf("wall %s bound %s critical %q, want %s %s %q", tl.Wall, tl.Bound, tl.Critical, tc.wall, tc.bound, tc.critical)
			}
			if tl.Images != tc.images || tl.Errors != tc.errors || critical != tc.criticalPhases {
				t.Errorf("%d images %d errors %d critical phases, want %d %d %d", tl.Images, tl.Errors, critical, tc.images, tc.errors, tc.criticalPhases)
			}
			if d := tl.Context.End - tl.Context.Start; d != tc.contextDuration {
				t.Errorf("context %s, want %s", d, tc.contextDuration)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	plain := &record.Image{Platform: "linux/amd64"}
	bad := &record.Image{Platform: "linux/amd64", Phases: []record.Phase{{Name: "build", Start: "2026-11-29T17:20:02Z", End: "2026-11-29T17:20:01Z"}}}
	garbled := &record.Error{Platform: "linux/arm64", Phases: []record.Phase{{Name: "build", Start: "yesterday", End: "2026-11-29T17:20:01Z"}}}
	for _, tc := range []struct {
		recs []record.Record
		want string
	}{
		{nil, ErrNoPhases.Error()},
		{[]record.Record{plain, &record.Manifest{}}, ErrNoPhases.Error()},
		{[]record.Record{bad}, `image record for linux/amd64: phase "build" ends (2026-11-29T17:20:01Z) before it starts (2026-11-29T17:20:02Z)`},
		{[]record.Record{garbled}, `error record for linux/arm64: phase "build": start: parsing time "yesterday"`},
	} {
		if _, err := New(tc.recs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v): %v, want %q", tc.recs, err, tc.want)
		}
	}
}

// TestGolden pins the drawings: run with -update after an intended change,
// and look at the pictures.
func TestGolden(t *testing.T) {
	for _, tc := range []struct{ in, out, format string }{
		{"failover.jsonl", "failover.svg", "svg"},
		{"push.jsonl", "push.svg", "svg"},
		{"lab-run.jsonl", "lab-run.html", "html"},
	} {
		t.Run(tc.out, func(t *testing.T) {
			in, err := os.Open(filepath.Join("testdata", tc.in))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			var out bytes.Buffer
			if err := Run(context.Background(), Options{Format: tc.format, Title: "farm build timeline"}, in, &out, nil); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.out)
			if *update {
				os.WriteFile(path, out.Bytes(), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", tc.in, path, out.String())
			}
		})
	}
}

// Every row is in the picture, named, with a bar per phase.
func TestEveryRowDrawn(t *testing.T) {
	var out bytes.Buffer
	in, _ := os.Open(filepath.Join("testdata", "failover.jsonl"))
	defer in.Close()
	if err := Run(context.Background(), Options{Format: "svg"}, in, &out, nil); err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`data-row="([^"]+)"`).FindAllStringSubmatch(out.String(), -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[1])
	}
	want := "context (client) linux/amd64@x86 linux/arm/v7@arm1 linux/arm64@arm1 linux/arm64@arm2 linux/s390x@z1"
	if strings.Join(got, " ") != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	if n := strings.Count(out.String(), `<rect class="phase `); n != 1+4+3+3+4 {
		t.Errorf("%d phase bars, want 15", n)
	}
}

// As a stage, farm-timeline passes every record on, byte for byte, and
// writes the picture to its file; a run it cannot draw is only a warning.
func TestPassThrough(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "failover.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, stdin, stdout, warning string
		err                          error
		drawn                        bool
	}{
		{name: "a run", stdin: string(in), stdout: strings.Replace(string(in), `{"v":1,"kind":"end","stage":"farm-build"}`, `{"v":1,"kind":"end","stage":"farm-timeline"}`, 1), drawn: true},
		{name: "nothing to draw", stdin: "{\"v\":1,\"kind\":\"manifest\",\"name\":\"a\",\"id\":\"\",\"digest\":\"\",\"instances\":[]}\n{\"v\":1,\"kind\":\"end\"}\n",
			stdout:  "{\"v\":1,\"kind\":\"manifest\",\"name\":\"a\",\"id\":\"\",\"digest\":\"\",\"instances\":[]}\n{\"v\":1,\"kind\":\"end\",\"stage\":\"farm-timeline\"}\n",
			warning: "no timeline written to "},
		{name: "cut short", stdin: strings.SplitAfter(string(in), "\n")[0], err: record.ErrTruncated, drawn: true,
			stdout: strings.SplitAfter(string(in), "\n")[0] + `{"v":1,"kind":"error","stage":"farm-timeline","error":"farm-timeline: stdin ended after line 1 without an end record: the stage before did not finish (killed, crashed or interrupted), so its output may be incomplete"}` + "\n" + `{"v":1,"kind":"end","stage":"farm-timeline"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".svg")
			var out bytes.Buffer
			var warnings []string
			err := Run(context.Background(), Options{Output: file}, strings.NewReader(tc.stdin), &out, func(m string) { warnings = append(warnings, m) })
			if !errors.Is(err, tc.err) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			if out.String() != tc.stdout {
				t.Errorf("stdout\n got %s\nwant %s", out.String(), tc.stdout)
			}
			if (tc.warning == "") != (len(warnings) == 0) || tc.warning != "" && !strings.Contains(warnings[0], tc.warning) {
				t.Errorf("warnings %q, want %q", warnings, tc.warning)
			}
			svg, _ := os.ReadFile(file)
			if drawn := bytes.HasPrefix(svg, []byte("<?xml")); drawn != tc.drawn {
				t.Errorf("drawn %v, want %v", drawn, tc.drawn)
			}
		})
	}
}

func TestTickStep(t *testing.T) {
	for _, tc := range []struct{ wall, step time.Duration }{
		{0, 100 * time.Millisecond}, {time.Second, 100 * time.Millisecond}, {7 * time.Second, time.Second},
		{55 * time.Second, 10 * time.Second}, {3 * time.Minute, 20 * time.Second}, {5 * time.Hour, 30 * time.Minute}, {12 * time.Hour, 2 * time.Hour},
	} {
		if got := tickStep(tc.wall); got != tc.step {
			t.Errorf("tickStep(%s) = %s, want %s", tc.wall, got, tc.step)
		}
	}
}

func TestFormatFor(t *testing.T) {
	for _, tc := range []struct{ output, format, want string }{
		{"", "", "html"}, {"run.SVG", "auto", "svg"}, {"run.html", "", "html"}, {"run.svg", "html", "html"}, {"x", "png", ""},
	} {
		got, err := Options{Output: tc.output, Format: tc.format}.FormatFor()
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("FormatFor(%q, %q) = %q, %v; want %q", tc.output, tc.format, got, err, tc.want)
		}
	}
}
