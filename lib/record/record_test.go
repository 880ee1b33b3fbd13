package record

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current encoder")

// sample is one record as a stage would write it.
type sample struct {
	name string
	rec  Record
}

func fullNode() Node {
	return Node{
		Name:     "arm1",
		URI:      "ssh://core@10.0.0.7:22/run/user/1000/podman/podman.sock",
		Identity: "/home/me/.ssh/id_ed25519",
		Native:   []string{"linux/arm64", "linux/arm/v7"},
		Emulated: []string{"linux/amd64"},
		CPUs:     8,
		Memory:   16 << 30,
		Podman:   "4.9.4",
	}
}

// samples covers every kind: fully set, zero (every field at its default)
// and with unknown fields, including unknown fields nested in job.node and
// job.alternatives[].
func samples() []sample {
	node := fullNode()
	x86 := Node{Name: "x86", URI: "ssh://core@10.0.0.8/run/podman/podman.sock", Native: []string{"linux/amd64"},
		Emulated: []string{"linux/arm64"}, CPUs: 16, Memory: 32 << 30, Podman: "5.0.2"}
	withExtra := node
	withExtra.Extra = Extra{"rack": json.RawMessage(`"r2"`), "gpu": json.RawMessage(`{"count":2,"model":"a10"}`)}
	x86Extra := x86
	x86Extra.Extra = Extra{"zone": json.RawMessage(`"b"`)}
	return []sample{
		{"node", &node},
		{"node_unreachable", &Node{Name: "down", URI: "ssh://core@10.0.0.9/run/podman/podman.sock",
			Native: []string{}, Emulated: []string{}, Error: "dial tcp 10.0.0.9:22: connect: connection refused"}},
		{"node_zero", &Node{}},
		{"node_kind", &Node{Name: "rl", URI: "ssh://farm@10.0.0.5/run/user/1001/podman/podman.sock", Native: []string{"linux/amd64"},
			Emulated: []string{}, CPUs: 2, Memory: 4 << 30, Podman: "4.3.1", CgroupManager: "cgroupfs", CgroupVersion: "v1",
			Rootless: true, Stop: StopRuntime}},
		{"node_load", &Node{Name: "busy", URI: "ssh://root@10.0.0.6/run/podman/podman.sock", Native: []string{"linux/amd64"},
			Emulated: []string{}, CPUs: 4, Memory: 8 << 30, Podman: "5.4.2", CgroupManager: "systemd", CgroupVersion: "v2",
			Stop: StopCgroup, GraphRoot: "/var/lib/containers/storage", Load: &Load{Builds: 2, Average: 3.25, StorageFree: 52 << 30}}},
		{"node_idle", &Node{Name: "idle", URI: "ssh://root@10.0.0.8/run/podman/podman.sock", Native: []string{"linux/amd64"},
			Emulated: []string{}, CPUs: 4, Podman: "4.3.1", Stop: StopCgroup, Load: &Load{}}},
		{"node_extra", &withExtra},

		{"job", &Job{Platform: "linux/arm64", Node: node, Alternatives: []Node{x86}}},
		{"job_emulated", &Job{Platform: "linux/riscv64", Node: x86, Emulated: true, Alternatives: []Node{}}},
		{"job_zero", &Job{}},
		{"job_extra", &Job{Platform: "linux/arm64", Node: withExtra, Alternatives: []Node{x86Extra},
			Extra: Extra{"priority": json.RawMessage(`10`)}}},

		{"image", &Image{Platform: "linux/arm64", Node: "arm1",
			ID:     "3f5e2a9c8b1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f",
			Digest: "sha256:9b2a6c1d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
			Tag:    "example.com/app:1.0", Ref: "example.com/app:1.0-linux-arm64",
			Size: 73400320, BuildSeconds: 41.25, TransferSeconds: 3.5, Transfer: "archive",
			BytesIn: 25165824, BytesOut: 1048576}},
		{"image_push", &Image{Platform: "linux/riscv64", Node: "x86",
			Digest: "sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
			Tag:    "example.com/app:1.0", Ref: "example.com/app@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
			Emulated: true, Size: 80000000, BuildSeconds: 610.5, Transfer: "push", BytesOut: 2048}},
		{"image_phases", &Image{Platform: "linux/arm64", Node: "arm2",
			ID:     "3f5e2a9c8b1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f",
			Digest: "sha256:9b2a6c1d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
			Tag:    "example.com/app:1.0", Ref: "example.com/app:1.0-linux-arm64",
			Size: 73400320, BuildSeconds: 41.25, TransferSeconds: 3.5, Transfer: "registry",
			BytesIn: 25165824, BytesOut: 1048576, Phases: samplePhases()}},
		{"image_zero", &Image{}},
		{"image_extra", &Image{Platform: "linux/amd64", Transfer: "registry",
			Extra: Extra{"sbom": json.RawMessage(`["spdx"]`), "cache_hit": json.RawMessage(`true`)}}},

		{"manifest", &Manifest{Name: "example.com/app:1.0",
			ID:     "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
			Digest: "sha256:1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
			Instances: []Instance{
				{Platform: "linux/amd64", Digest: "sha256:aa"},
				{Platform: "linux/arm64", Digest: "sha256:bb"},
			}}},
		{"manifest_pushed", &Manifest{Name: "example.com/app:1.0", Digest: "sha256:cc",
			Instances: []Instance{{Platform: "linux/arm64", Digest: "sha256:bb"}}, Pushed: "docker://example.com/app:1.0"}},
		{"manifest_zero", &Manifest{}},
		{"manifest_extra", &Manifest{Name: "a", Instances: []Instance{}, Extra: Extra{"annotations": json.RawMessage(`{"org.opencontainers.image.source":"https://example.com"}`)}}},

		{"error", &Error{Stage: "farm-build", Error: "RUN make: exit status 2", Platform: "linux/arm64", Node: "arm1"}},
		{"error_line", &Error{Stage: "farm-build", Error: `farm-build: stdin line 3: unknown kind "nod" (want one of node, job, image, manifest, error)`, Line: 3}},
		{"error_phases", &Error{Stage: "farm-build", Error: "building linux/arm64 on arm1: RUN make: exit status 2", Platform: "linux/arm64", Node: "arm1",
			Phases: []Phase{
				{Name: PhaseContext, Start: "2026-11-29T17:20:00.000Z", End: "2026-11-29T17:20:00.250Z"},
				{Name: PhaseConnect, Node: "arm1", Start: "2026-11-29T17:20:00.250Z", End: "2026-11-29T17:20:00.400Z"},
				{Name: PhaseUpload, Node: "arm1", Start: "2026-11-29T17:20:00.400Z", End: "2026-11-29T17:20:01.000Z"},
				{Name: PhaseBuild, Node: "arm1", Start: "2026-11-29T17:20:01.000Z", End: "2026-11-29T17:20:04.125Z",
					Error: "building linux/arm64 on arm1: RUN make: exit status 2"},
			}}},
		{"error_zero", &Error{}},
		{"error_extra", &Error{Stage: "my-stage", Error: "quota <exceeded> & more", Extra: Extra{"retry": json.RawMessage(`false`)}}},
		{"end", &End{Stage: "farm-build"}},
		{"end_zero", &End{}},
		{"end_extra", &End{Stage: "my-stage", Extra: Extra{"records": json.RawMessage(`3`)}}},
	}
}

// samplePhases is a job that failed over: the connection to arm1 broke
// during the build, arm2 built the image.
func samplePhases() []Phase {
	return []Phase{
		{Name: PhaseContext, Start: "2026-11-29T17:20:00.000Z", End: "2026-11-29T17:20:00.250Z"},
		{Name: PhaseConnect, Node: "arm1", Start: "2026-11-29T17:20:00.250Z", End: "2026-11-29T17:20:00.400Z"},
		{Name: PhaseUpload, Node: "arm1", Start: "2026-11-29T17:20:00.400Z", End: "2026-11-29T17:20:01.000Z"},
		{Name: PhaseBuild, Node: "arm1", Start: "2026-11-29T17:20:01.000Z", End: "2026-11-29T17:20:09.500Z",
			Error: "building linux/arm64 on arm1: ssh: connection lost"},
		{Name: PhaseConnect, Node: "arm2", Start: "2026-11-29T17:20:09.500Z", End: "2026-11-29T17:20:09.700Z"},
		{Name: PhaseUpload, Node: "arm2", Start: "2026-11-29T17:20:09.700Z", End: "2026-11-29T17:20:10.100Z"},
		{Name: PhaseBuild, Node: "arm2", Start: "2026-11-29T17:20:10.100Z", End: "2026-11-29T17:20:51.350Z"},
		{Name: PhasePull, Node: "arm2", Start: "2026-11-29T17:20:51.350Z", End: "2026-11-29T17:20:54.850Z"},
	}
}

var allKinds = []string{KindNode, KindJob, KindImage, KindManifest, KindError, KindEnd}

func encode(t testing.TB, r Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := NewEncoder(&buf).Write(r); err != nil {
		t.Fatalf("encoding %#v: %v", r, err)
	}
	return buf.Bytes()
}

// normalize makes a record comparable after a trip through JSON: lists are
// written as [] (so nil and empty are one value) and unknown fields are
// compared by JSON value, not by spelling (the encoder compacts them and
// escapes <, > and &).
func normalize(t testing.TB, r Record) Record {
	t.Helper()
	switch r := r.(type) {
	case *Node:
		n := normNode(t, *r)
		return &n
	case *Job:
		j := *r
		j.Node = normNode(t, j.Node)
		alts := []Node{}
		for _, a := range j.Alternatives {
			alts = append(alts, normNode(t, a))
		}
		j.Alternatives = alts
		j.Extra = normExtra(t, j.Extra)
		return &j
	case *Image:
		i := *r
		i.Extra = normExtra(t, i.Extra)
		return &i
	case *Manifest:
		m := *r
		if m.Instances == nil {
			m.Instances = []Instance{}
		}
		m.Extra = normExtra(t, m.Extra)
		return &m
	case *Error:
		e := *r
		e.Extra = normExtra(t, e.Extra)
		return &e
	case *End:
		e := *r
		e.Extra = normExtra(t, e.Extra)
		return &e
	}
	t.Fatalf("normalize: unexpected record %T", r)
	return nil
}

func normNode(t testing.TB, n Node) Node {
	if n.Native == nil {
		n.Native = []string{}
	}
	if n.Emulated == nil {
		n.Emulated = []string{}
	}
	n.Extra = normExtra(t, n.Extra)
	return n
}

func normExtra(t testing.TB, e Extra) Extra {
	if len(e) == 0 {
		return nil
	}
	out := Extra{}
	for k, raw := range e {
		out[k] = canonicalJSON(t, raw)
	}
	return out
}

// canonicalJSON re-encodes a JSON value with sorted keys and Go's escaping,
// keeping numbers as written (no float64 rounding).
func canonicalJSON(t testing.TB, raw json.RawMessage) json.RawMessage {
	t.Helper()
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("unknown field value %q is not JSON: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encoding %q: %v", raw, err)
	}
	return b
}

func sameRecord(t testing.TB, a, b Record) bool {
	t.Helper()
	return reflect.DeepEqual(normalize(t, a), normalize(t, b))
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			line := encode(t, s.rec)
			if n := bytes.Count(line, []byte("\n")); n != 1 || line[len(line)-1] != '\n' {
				t.Fatalf("encoded %d newlines, want exactly one at the end: %s", n, line)
			}
			got, err := Decode(bytes.TrimSuffix(line, []byte("\n")))
			if err != nil {
				t.Fatalf("Decode(%s): %v", line, err)
			}
			if got.Kind() != s.rec.Kind() {
				t.Fatalf("decoded kind %q, want %q", got.Kind(), s.rec.Kind())
			}
			if !sameRecord(t, got, s.rec) {
				t.Errorf("round trip changed the record\n got: %#v\nwant: %#v\nline: %s", got, s.rec, line)
			}
			// Encoding is stable: what a stage reads and writes back is
			// byte for byte what it read.
			if again := encode(t, got); !bytes.Equal(again, line) {
				t.Errorf("re-encoding differs\nfirst: %s\nagain: %s", line, again)
			}
		})
	}
}

func TestRoundTripEveryKind(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range samples() {
		seen[s.rec.Kind()] = true
	}
	for _, k := range allKinds {
		if !seen[k] {
			t.Errorf("no sample of kind %q", k)
		}
	}
}

// TestGolden pins the exact bytes of every kind, so a change to the wire
// format shows up as a diff of testdata/*.golden. Run with -update to
// rewrite them after an intended change.
func TestGolden(t *testing.T) {
	byKind := map[string][]byte{}
	for _, s := range samples() {
		byKind[s.rec.Kind()] = append(byKind[s.rec.Kind()], encode(t, s.rec)...)
	}
	for _, kind := range allKinds {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join("testdata", kind+".golden")
			got := byKind[kind]
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded %s records differ from %s (go test -update rewrites it)\n got:\n%s\nwant:\n%s", kind, path, got, want)
			}
		})
	}
}

// goldenLines returns every line of every golden file.
func goldenLines(t testing.TB) [][]byte {
	t.Helper()
	var lines [][]byte
	for _, kind := range allKinds {
		b, err := os.ReadFile(filepath.Join("testdata", kind+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))...)
	}
	return lines
}

// topKeys lists the keys of a JSON object in the order they appear.
func topKeys(t testing.TB, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object: %v %v", line, tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// jsonFields lists a struct type's JSON field names in declaration order,
// and which of them are omitted when empty.
func jsonFields(typ reflect.Type) (names []string, omitempty map[string]bool) {
	omitempty = map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		if strings.Contains(opts, "omitempty") {
			omitempty[name] = true
		}
	}
	return names, omitempty
}

// TestFieldOrder checks the documented output order: "v", "kind", the known
// fields in declaration order, then unknown fields sorted by name.
func TestFieldOrder(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			line := encode(t, s.rec)
			names, omit := jsonFields(reflect.TypeOf(s.rec).Elem())
			want := []string{"v", "kind"}
			var full map[string]json.RawMessage
			if err := json.Unmarshal(line, &full); err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if _, ok := full[n]; ok || !omit[n] {
					want = append(want, n)
				}
			}
			var extras []string
			for k := range extraOf(s.rec) {
				extras = append(extras, k)
			}
			slices.Sort(extras)
			want = append(want, extras...)
			if got := topKeys(t, line); !reflect.DeepEqual(got, want) {
				t.Errorf("keys %v, want %v", got, want)
			}
		})
	}
}

func extraOf(r Record) Extra {
	switch r := r.(type) {
	case *End:
		return r.Extra
	case *Node:
		return r.Extra
	case *Job:
		return r.Extra
	case *Image:
		return r.Extra
	case *Manifest:
		return r.Extra
	case *Error:
		return r.Extra
	}
	return nil
}

// TestUnknownFieldsKept checks that fields this farm does not know survive a
// stage: kept in Extra on decode and written back, at the top level and in
// the node records a job carries.
func TestUnknownFieldsKept(t *testing.T) {
	tests := []struct {
		name string
		line string
		// check inspects the decoded record.
		check func(t *testing.T, r Record)
		// want are fragments the re-encoded line must contain.
		want []string
	}{
		{
			name: "node",
			line: `{"v":1,"kind":"node","name":"a","rack":"r2","gpu":{"count":2}}`,
			check: func(t *testing.T, r Record) {
				n := r.(*Node)
				wantExtra(t, n.Extra, map[string]string{"rack": `"r2"`, "gpu": `{"count":2}`})
			},
			want: []string{`"error":"","gpu":{"count":2},"rack":"r2"}`},
		},
		{
			name: "job and its nodes",
			line: `{"v":1,"kind":"job","platform":"linux/arm64","node":{"v":1,"kind":"node","name":"a","rack":"r2"},` +
				`"alternatives":[{"v":1,"kind":"node","name":"b","zone":"z1"},{"name":"c"}],"priority":10}`,
			check: func(t *testing.T, r Record) {
				j := r.(*Job)
				wantExtra(t, j.Extra, map[string]string{"priority": `10`})
				wantExtra(t, j.Node.Extra, map[string]string{"rack": `"r2"`})
				if len(j.Alternatives) != 2 {
					t.Fatalf("alternatives = %d, want 2", len(j.Alternatives))
				}
				wantExtra(t, j.Alternatives[0].Extra, map[string]string{"zone": `"z1"`})
				wantExtra(t, j.Alternatives[1].Extra, nil)
				if j.Node.Name != "a" || j.Alternatives[0].Name != "b" || j.Alternatives[1].Name != "c" {
					t.Errorf("node names %q %q %q", j.Node.Name, j.Alternatives[0].Name, j.Alternatives[1].Name)
				}
			},
			want: []string{`"error":"","rack":"r2"}`, `"error":"","zone":"z1"}`, `"alternatives":[`, `],"priority":10}`},
		},
		{
			name: "image",
			line: `{"v":1,"kind":"image","platform":"linux/amd64","sbom":["spdx"]}`,
			check: func(t *testing.T, r Record) {
				wantExtra(t, r.(*Image).Extra, map[string]string{"sbom": `["spdx"]`})
			},
			want: []string{`"bytes_out":0,"sbom":["spdx"]}`},
		},
		{
			name: "manifest",
			line: `{"v":1,"kind":"manifest","name":"a","instances":[],"notes":null}`,
			check: func(t *testing.T, r Record) {
				wantExtra(t, r.(*Manifest).Extra, map[string]string{"notes": `null`})
			},
			want: []string{`"instances":[],"notes":null}`},
		},
		{
			name: "error",
			line: `{"v":1,"kind":"error","stage":"x","error":"boom","retry":false}`,
			check: func(t *testing.T, r Record) {
				wantExtra(t, r.(*Error).Extra, map[string]string{"retry": `false`})
			},
			want: []string{`"error":"boom","retry":false}`},
		},
		{
			// encoding/json matches keys ignoring case; in this format
			// "NAME" is just another unknown field and must not replace
			// "name".
			name: "unknown field differing only in case",
			line: `{"v":1,"kind":"node","name":"a","NAME":"b","Cpus":"many"}`,
			check: func(t *testing.T, r Record) {
				n := r.(*Node)
				if n.Name != "a" || n.CPUs != 0 {
					t.Errorf("Name = %q, CPUs = %d; want a and 0", n.Name, n.CPUs)
				}
				wantExtra(t, n.Extra, map[string]string{"NAME": `"b"`, "Cpus": `"many"`})
			},
			want: []string{`"name":"a"`, `"Cpus":"many","NAME":"b"}`},
		},
		{
			// Unicode folding: "ſ" (long s) folds to "s".
			name: "unknown field folding to a known one",
			line: `{"v":1,"kind":"image","ſize":5,"size":7}`,
			check: func(t *testing.T, r Record) {
				i := r.(*Image)
				if i.Size != 7 {
					t.Errorf("Size = %d, want 7", i.Size)
				}
				wantExtra(t, i.Extra, map[string]string{"ſize": `5`})
			},
			want: []string{`"size":7`, `"ſize":5}`},
		},
		{
			// "V" and "KIND" are not the header: they are kept as unknown
			// fields and do not change how the line is read.
			name: "header keys differing in case",
			line: `{"v":1,"kind":"node","V":2,"KIND":"job"}`,
			check: func(t *testing.T, r Record) {
				wantExtra(t, r.(*Node).Extra, map[string]string{"V": `2`, "KIND": `"job"`})
			},
			want: []string{`{"v":1,"kind":"node",`, `"KIND":"job","V":2}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Decode([]byte(tt.line))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.check(t, r)
			out := encode(t, r)
			for _, w := range tt.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("encoded line lacks %s:\n%s", w, out)
				}
			}
			// And a second stage reads back the same record.
			r2, err := Decode(bytes.TrimSpace(out))
			if err != nil {
				t.Fatalf("Decode(re-encoded): %v", err)
			}
			if !sameRecord(t, r, r2) {
				t.Errorf("second stage read %#v, want %#v", r2, r)
			}
		})
	}
}

func wantExtra(t *testing.T, got Extra, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("Extra = %s, want %v", extraString(got), want)
		return
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("Extra[%q] = %s, want %s", k, got[k], v)
		}
	}
}

func extraString(e Extra) string {
	b, _ := json.Marshal(e)
	return string(b)
}

// TestExtraNeverShadows checks that an Extra entry named like a known field
// or the header is not written: the known value wins, and the line keeps one
// "v" and one "kind".
func TestExtraNeverShadows(t *testing.T) {
	n := Node{Name: "a", Extra: Extra{"name": json.RawMessage(`"b"`), "v": json.RawMessage(`2`),
		"kind": json.RawMessage(`"job"`), "nil": nil}}
	got := string(encode(t, &n))
	want := `{"v":1,"kind":"node","name":"a","uri":"","identity":"","native":[],"emulated":[],"cpus":0,"memory":0,"podman":"","error":"","nil":null}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestJobNodeIsANodeRecord checks the nested marshal: a job's node (and each
// alternative) is written as a whole node record, "v" and "kind" included,
// so a tool can cut it out and feed it to anything that reads node records.
func TestJobNodeIsANodeRecord(t *testing.T) {
	node := fullNode()
	j := &Job{Platform: "linux/arm64", Node: node, Alternatives: []Node{node}}
	line := encode(t, j)
	var raw struct {
		Node         json.RawMessage   `json:"node"`
		Alternatives []json.RawMessage `json:"alternatives"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		t.Fatal(err)
	}
	nodeLine := encode(t, &node)
	for i, nested := range append([]json.RawMessage{raw.Node}, raw.Alternatives...) {
		if !bytes.Equal(append(nested, '\n'), nodeLine) {
			t.Errorf("nested node %d = %s, want the node record %s", i, nested, nodeLine)
		}
		r, err := Decode(nested)
		if err != nil {
			t.Fatalf("nested node %d does not decode as a record: %v", i, err)
		}
		if !sameRecord(t, r, &node) {
			t.Errorf("nested node %d decoded as %#v", i, r)
		}
	}
	// And the job decodes back with its node, whose "v" and "kind" are
	// the header of the nested record, not unknown fields.
	back, err := Decode(bytes.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	jb := back.(*Job)
	if !sameRecord(t, jb, j) || jb.Node.Extra != nil {
		t.Errorf("job decoded as %#v", jb)
	}
	// A node without "v" and "kind" is read the same: the line's header
	// already says what it is.
	bare := `{"v":1,"kind":"job","platform":"linux/arm64","node":{"name":"arm1","cpus":8},"emulated":false}`
	r, err := Decode([]byte(bare))
	if err != nil {
		t.Fatal(err)
	}
	if jb := r.(*Job); jb.Node.Name != "arm1" || jb.Node.CPUs != 8 || jb.Node.Extra != nil {
		t.Errorf("bare node decoded as %#v", jb.Node)
	}
}

// TestNullLists checks that null lists, which another language may well
// write, read as empty, and are written back as [].
func TestNullLists(t *testing.T) {
	r, err := Decode([]byte(`{"v":1,"kind":"job","node":{"native":null,"emulated":null},"alternatives":null}`))
	if err != nil {
		t.Fatal(err)
	}
	out := string(encode(t, r))
	for _, w := range []string{`"native":[]`, `"emulated":[]`, `"alternatives":[]`} {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %s", out, w)
		}
	}
	if strings.Contains(out, "null") {
		t.Errorf("%s has a null", out)
	}
}

func TestKind(t *testing.T) {
	for r, want := range map[Record]string{&Node{}: "node", &Job{}: "job", &Image{}: "image", &Manifest{}: "manifest", &Error{}: "error", &End{}: "end"} {
		if r.Kind() != want {
			t.Errorf("%T.Kind() = %q, want %q", r, r.Kind(), want)
		}
	}
}

func TestReachable(t *testing.T) {
	if !(&Node{Name: "a"}).Reachable() {
		t.Error("node without error is not reachable")
	}
	if (&Node{Name: "a", Error: "timeout"}).Reachable() {
		t.Error("node with error is reachable")
	}
}

// Every combination of a scheme (or its broken forms), a password with the
// characters that break URLs, a host and a path: the password never shows.
func TestRedactURINeverShowsThePassword(t *testing.T) {
	for _, scheme := range []string{"", "ssh://", "ssh:", "ssh:/", "SSH://", "tcp://", "unix://", "ftp://", "//"} {
		for _, pw := range []string{"hunter2", "p@ss", "a:b", "x/y", "1#y", "1?y", "9", "@", "::", "a@b/c:d", "x//y", "x://y"} {
			for _, host := range []string{"h", "127.0.0.1:2223", "[fd00::7]:22", "host:notaport"} {
				for _, path := range []string{"", "/sock", "/a@b:c/sock", "?x=a:b@c", "#f"} {
					uri := scheme + "root:" + pw + "@" + host + path
					got := RedactURI(uri)
					if !strings.Contains(got, "root:xxxxx@") || strings.Contains(got, "root:"+pw+"@") {
						t.Errorf("RedactURI(%q) = %q", uri, got)
					}
				}
			}
		}
	}
}

func TestRedactURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ssh://user:pass@host:22/sock", "ssh://user:xxxxx@host:22/sock"},
		{"ssh://core:s3cret@10.0.0.7:22/run/user/1000/podman/podman.sock", "ssh://core:xxxxx@10.0.0.7:22/run/user/1000/podman/podman.sock"},
		{"tcp://admin:pw@host:8080", "tcp://admin:xxxxx@host:8080"},
		// A password may contain "@" and ":"; all of it goes.
		{"ssh://user:p@ss:w@host:22/sock", "ssh://user:xxxxx@host:22/sock"},
		{"ssh://user:@host/sock", "ssh://user:xxxxx@host/sock"},
		{"ssh://user:pass@[fd00::7]:22/sock", "ssh://user:xxxxx@[fd00::7]:22/sock"},
		{"ssh://[fd00::7]:22/sock", "ssh://[fd00::7]:22/sock"},
		// No password: unchanged.
		{"ssh://user@host:22/sock", "ssh://user@host:22/sock"},
		{"ssh://host:22/run/podman/podman.sock", "ssh://host:22/run/podman/podman.sock"},
		{"unix:///run/podman/podman.sock", "unix:///run/podman/podman.sock"},
		// "@" and ":" after the host are path, not a password.
		{"ssh://host:22/home/a:b@c/sock", "ssh://host:22/home/a:b@c/sock"},
		{"ssh://user@host/p?x=a:b@c", "ssh://user@host/p?x=a:b@c"},
		// Malformed, the password goes all the same.
		{"user:pass@host", "user:xxxxx@host"},
		{"root:hunter2@127.0.0.1:2223/run/podman.sock", "root:xxxxx@127.0.0.1:2223/run/podman.sock"},
		{"ssh:root:hunter2@127.0.0.1:2223/run/podman.sock", "ssh:root:xxxxx@127.0.0.1:2223/run/podman.sock"},
		{"ssh:/root:hunter2@127.0.0.1:2223/run/podman.sock", "ssh:/root:xxxxx@127.0.0.1:2223/run/podman.sock"},
		{"SSH:root:hunter2@h/s", "SSH:root:xxxxx@h/s"},
		{"ssh://root:hun/ter2@127.0.0.1:2223/run/podman.sock", "ssh://root:xxxxx@127.0.0.1:2223/run/podman.sock"},
		{"ssh://root:a@b/c@d:22/sock", "ssh://root:xxxxx@b/c@d:22/sock"},
		{"ftp://root:pw@h/s", "ftp://root:xxxxx@h/s"},
		{"root:pw@", "root:xxxxx@"},
		// No password.
		{"/run/a:b/c@d", "/run/a:b/c@d"},
		{"ssh://root@h:22/a:b/c@d", "ssh://root@h:22/a:b/c@d"},
		{"host:22", "host:22"},
		{"ssh:host:22", "ssh:host:22"},
		{"host:22", "host:22"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := RedactURI(tt.in); got != tt.want {
			t.Errorf("RedactURI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
