package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The JSON Schemas in docs/schema let a stage written in another language
// validate its input and output. These tests keep them from drifting from
// the Go types: same field names, same required fields, same JSON types.

var schemaDir = filepath.Join("..", "..", "docs", "schema")

var kindTypes = map[string]reflect.Type{
	KindNode:     reflect.TypeOf(Node{}),
	KindJob:      reflect.TypeOf(Job{}),
	KindImage:    reflect.TypeOf(Image{}),
	KindManifest: reflect.TypeOf(Manifest{}),
	KindError:    reflect.TypeOf(Error{}),
	KindEnd:      reflect.TypeOf(End{}),
}

func loadSchema(t *testing.T, kind string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(schemaDir, kind+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s.json is not JSON: %v", kind, err)
	}
	if dec.More() {
		t.Fatalf("%s.json has data after the schema", kind)
	}
	return s
}

func TestSchemaFiles(t *testing.T) {
	entries, err := os.ReadDir(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	var want []string
	for _, k := range allKinds {
		want = append(want, k+".json")
	}
	sort.Strings(want)
	if !slices.Equal(files, want) {
		t.Errorf("docs/schema has %v, want one file per kind: %v", files, want)
	}
}

func TestSchemaMatchesTypes(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(kind, func(t *testing.T) {
			s := loadSchema(t, kind)
			if got := s["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema = %v, want draft 2020-12", got)
			}
			props := checkObjectSchema(t, s, s, kindTypes[kind], kind, true)
			if v, _ := props["v"].(map[string]any); v == nil || fmt.Sprint(v["const"]) != "1" {
				t.Errorf(`"v" is %v, want {"const": 1}`, props["v"])
			}
			if k, _ := props["kind"].(map[string]any); k == nil || k["const"] != kind {
				t.Errorf(`"kind" is %v, want {"const": %q}`, props["kind"], kind)
			}
		})
	}
}

// checkObjectSchema checks that an object schema lists exactly the struct's
// JSON fields (plus "v" and "kind" for a record), requires exactly the ones
// always written (plus the header, when header is true), gives each the
// JSON type of its Go type, and allows unknown fields, which are part of
// the contract. It returns the properties.
func checkObjectSchema(t *testing.T, root, s map[string]any, typ reflect.Type, where string, header bool) map[string]any {
	t.Helper()
	if s["type"] != "object" {
		t.Errorf("%s: type %v, want object", where, s["type"])
	}
	if ap, ok := s["additionalProperties"]; ok && ap != true {
		t.Errorf("%s: additionalProperties is %v; unknown fields must be allowed", where, ap)
	}
	props, _ := s["properties"].(map[string]any)
	names, omit := jsonFields(typ)
	var wantProps, wantRequired []string
	if _, ok := props["v"]; ok || header {
		wantProps = append(wantProps, "v", "kind")
	}
	if header {
		wantRequired = append(wantRequired, "v", "kind")
	}
	wantProps = append(wantProps, names...)
	for _, n := range names {
		if !omit[n] {
			wantRequired = append(wantRequired, n)
		}
	}
	if got := sortedKeys(props); !slices.Equal(got, sorted(wantProps)) {
		t.Errorf("%s: properties %v, want %v (the JSON fields of %s)", where, got, sorted(wantProps), typ)
	}
	var required []string
	for _, r := range asSlice(s["required"]) {
		required = append(required, fmt.Sprint(r))
	}
	if !slices.Equal(sorted(required), sorted(wantRequired)) {
		t.Errorf("%s: required %v, want %v (the fields without omitempty)", where, sorted(required), sorted(wantRequired))
	}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p, _ := props[name].(map[string]any)
		if p == nil {
			continue // reported above
		}
		if d, _ := p["description"].(string); d == "" {
			t.Errorf("%s.%s: no description", where, name)
		}
		checkFieldSchema(t, root, p, f.Type, where+"."+name)
	}
	return props
}

// checkFieldSchema checks that a property schema has the JSON type of the
// Go type, following $ref into the schema's $defs.
func checkFieldSchema(t *testing.T, root, p map[string]any, typ reflect.Type, where string) {
	t.Helper()
	p = deref(t, root, p, where)
	if typ.Kind() == reflect.Pointer { // an optional object: left out when nil
		typ = typ.Elem()
	}
	if typ == reflect.TypeOf(Load{}) || typ == reflect.TypeOf(Node{}) || typ == reflect.TypeOf(Instance{}) || typ == reflect.TypeOf(Phase{}) {
		checkObjectSchema(t, root, p, typ, where, false)
		return
	}
	want := map[reflect.Kind]string{
		reflect.String: "string", reflect.Bool: "boolean", reflect.Int: "integer",
		reflect.Int64: "integer", reflect.Float64: "number", reflect.Slice: "array",
	}[typ.Kind()]
	got, _ := p["type"].(string)
	if got == "" && p["enum"] != nil && typ.Kind() == reflect.String {
		for _, e := range asSlice(p["enum"]) {
			if _, ok := e.(string); !ok {
				t.Errorf("%s: enum value %v is not a string", where, e)
			}
		}
		return
	}
	if got != want || want == "" {
		t.Errorf("%s: type %q, want %q for Go %s", where, got, want, typ)
		return
	}
	if typ.Kind() == reflect.Slice {
		items, _ := p["items"].(map[string]any)
		if items == nil {
			t.Errorf("%s: array without items", where)
			return
		}
		checkFieldSchema(t, root, items, typ.Elem(), where+"[]")
	}
}

func deref(t *testing.T, root, p map[string]any, where string) map[string]any {
	t.Helper()
	ref, ok := p["$ref"].(string)
	if !ok {
		return p
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	defs, _ := root["$defs"].(map[string]any)
	def, _ := defs[name].(map[string]any)
	if !ok || def == nil {
		t.Fatalf("%s: $ref %q does not name a $defs entry of this file", where, ref)
	}
	return def
}

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// TestSchemaValidatesRecords validates what the encoder writes against the
// schemas, and checks that the schemas reject what a reader would reject.
// The validator below implements just the keywords the schemas use (and
// fails on any other), because the module graph has no 2020-12 validator.
func TestSchemaValidatesRecords(t *testing.T) {
	for _, s := range samples() {
		if strings.HasSuffix(s.name, "_zero") {
			// A zero record is valid Go but not a record a stage
			// writes (no platform, no transfer).
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			schema := loadSchema(t, s.rec.Kind())
			doc := decodeAny(t, encode(t, s.rec))
			if errs := validate(schema, schema, doc, "$"); len(errs) > 0 {
				t.Errorf("%s does not validate:\n%s", encode(t, s.rec), strings.Join(errs, "\n"))
			}
		})
	}
	bad := []struct {
		kind, line, why string
	}{
		{"node", `{"v":2,"kind":"node","name":"","uri":"","identity":"","native":[],"emulated":[],"cpus":0,"memory":0,"podman":"","error":""}`, "v 2"},
		{"node", `{"v":"1","kind":"node","name":"","uri":"","identity":"","native":[],"emulated":[],"cpus":0,"memory":0,"podman":"","error":""}`, "v string"},
		{"node", `{"v":1,"kind":"job","name":"","uri":"","identity":"","native":[],"emulated":[],"cpus":0,"memory":0,"podman":"","error":""}`, "wrong kind"},
		{"node", `{"v":1,"kind":"node","name":"","uri":"","identity":"","native":[],"emulated":[],"cpus":"four","memory":0,"podman":"","error":""}`, "cpus string"},
		{"node", `{"v":1,"kind":"node","name":"","uri":"","identity":"","native":["arm64"],"emulated":[],"cpus":0,"memory":0,"podman":"","error":""}`, "platform not canonical"},
		{"node", `{"v":1,"kind":"node","name":""}`, "fields missing"},
		{"job", `{"v":1,"kind":"job","platform":"linux/arm64","node":{"name":"a"},"emulated":false,"alternatives":[]}`, "nested node incomplete"},
		{"job", `{"v":1,"kind":"job","platform":"linux/arm64","node":{"v":1,"kind":"image","name":"","uri":"","identity":"","native":[],"emulated":[],"cpus":0,"memory":0,"podman":"","error":""},"emulated":false,"alternatives":[]}`, "nested kind"},
		{"image", `{"v":1,"kind":"image","platform":"linux/arm64","node":"","id":"","digest":"","tag":"","ref":"","emulated":false,"size":0,"build_seconds":0,"transfer_seconds":0,"transfer":"scp","bytes_in":0,"bytes_out":0}`, "unknown transfer"},
		{"image", `{"v":1,"kind":"image","platform":"linux/arm64","node":"","id":"","digest":"","tag":"","ref":"","emulated":false,"size":1.5,"build_seconds":0,"transfer_seconds":0,"transfer":"push","bytes_in":0,"bytes_out":0}`, "fractional size"},
		{"manifest", `{"v":1,"kind":"manifest","name":"","id":"","digest":"","instances":[{"platform":"linux/arm64"}]}`, "instance without digest"},
		{"error", `{"v":1,"kind":"error","stage":"x"}`, "no error text"},
		{"error", `{"v":1,"kind":"error","stage":"x","error":"y","line":0}`, "line 0"},
	}
	for _, b := range bad {
		t.Run("bad "+b.why, func(t *testing.T) {
			schema := loadSchema(t, b.kind)
			if errs := validate(schema, schema, decodeAny(t, []byte(b.line)), "$"); len(errs) == 0 {
				t.Errorf("%s schema accepts %s", b.kind, b.line)
			}
		})
	}
	// Unknown fields are part of the contract: the schema accepts them,
	// wherever they are.
	job := string(goldenLines(t)[0])
	for _, l := range goldenLines(t) {
		if bytes.Contains(l, []byte(`"kind":"job"`)) && bytes.Contains(l, []byte(`"priority"`)) {
			job = string(l)
		}
	}
	if !strings.Contains(job, `"rack"`) || !strings.Contains(job, `"zone"`) {
		t.Fatalf("no golden job with nested unknown fields: %s", job)
	}
	schema := loadSchema(t, KindJob)
	if errs := validate(schema, schema, decodeAny(t, []byte(job)), "$"); len(errs) > 0 {
		t.Errorf("job with unknown fields does not validate: %v", errs)
	}
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// validate checks doc against schema s (root holds $defs) and returns what
// is wrong, one message per problem.
func validate(root, s map[string]any, doc any, path string) []string {
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, path+": "+fmt.Sprintf(format, args...))
	}
	for k, v := range s {
		switch k {
		case "$schema", "title", "description", "$defs":
		case "$ref":
			ref, _ := v.(string)
			name, ok := strings.CutPrefix(ref, "#/$defs/")
			defs, _ := root["$defs"].(map[string]any)
			def, _ := defs[name].(map[string]any)
			if !ok || def == nil {
				fail("unresolvable $ref %v", v)
				continue
			}
			errs = append(errs, validate(root, def, doc, path)...)
		case "type":
			if got := jsonTypeOf(doc); got != v && !(v == "number" && got == "integer") {
				fail("%s, want %s", got, v)
			}
		case "const":
			if !sameJSON(doc, v) {
				fail("%v, want %v", doc, v)
			}
		case "enum":
			if !slices.ContainsFunc(asSlice(v), func(e any) bool { return sameJSON(doc, e) }) {
				fail("%v, want one of %v", doc, v)
			}
		case "minimum":
			n, ok := doc.(json.Number)
			min, _ := v.(json.Number)
			if f, err := n.Float64(); ok && err == nil {
				if m, _ := min.Float64(); f < m {
					fail("%v < %v", doc, v)
				}
			}
		case "pattern":
			str, ok := doc.(string)
			if ok && !regexp.MustCompile(v.(string)).MatchString(str) {
				fail("%q does not match %s", str, v)
			}
		case "required":
			obj, ok := doc.(map[string]any)
			for _, r := range asSlice(v) {
				if _, has := obj[r.(string)]; ok && !has {
					fail("missing %q", r)
				}
			}
		case "properties":
			obj, _ := doc.(map[string]any)
			for name, sub := range v.(map[string]any) {
				if val, has := obj[name]; has {
					errs = append(errs, validate(root, sub.(map[string]any), val, path+"."+name)...)
				}
			}
		case "additionalProperties":
			if v != true {
				fail("validator only knows additionalProperties: true")
			}
		case "items":
			for i, item := range asSlice(doc) {
				errs = append(errs, validate(root, v.(map[string]any), item, fmt.Sprintf("%s[%d]", path, i))...)
			}
		default:
			fail("validator does not know keyword %q", k)
		}
	}
	return errs
}

func jsonTypeOf(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if f, err := v.Float64(); err == nil && f == math.Trunc(f) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func sameJSON(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	if an, ok := a.(json.Number); ok {
		if bn, ok := b.(json.Number); ok {
			af, _ := an.Float64()
			bf, _ := bn.Float64()
			return af == bf
		}
	}
	return bytes.Equal(ab, bb)
}
