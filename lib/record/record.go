// Package record is farm's public contract: the JSON Lines records that the
// stages pass through pipes. Every line is one JSON object with "v" (the
// format version) and "kind". Fields a stage does not know are kept in Extra
// and written back out, so a custom stage can add its own fields and the
// stages after it pass them on. docs/records.md documents every field.
package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Version is the only format version this package reads and writes.
const Version = 1

// Kinds of record.
const (
	KindNode     = "node"
	KindJob      = "job"
	KindImage    = "image"
	KindManifest = "manifest"
	KindError    = "error"
)

// Record is one line of the stream.
type Record interface {
	Kind() string
}

// Extra holds the fields of a record that this version of farm does not know.
type Extra map[string]json.RawMessage

// Node is a podman service that can build: a system connection, or the local
// service.
type Node struct {
	Name     string   `json:"name"`
	URI      string   `json:"uri"`
	Identity string   `json:"identity"`
	Native   []string `json:"native"`
	Emulated []string `json:"emulated"`
	CPUs     int      `json:"cpus"`
	Memory   int64    `json:"memory"`
	Podman   string   `json:"podman"`
	Error    string   `json:"error"`
	Extra    Extra    `json:"-"`
}

// Job asks farm-build to build one platform on one node.
type Job struct {
	Platform     string `json:"platform"`
	Node         Node   `json:"node"`
	Emulated     bool   `json:"emulated"`
	Alternatives []Node `json:"alternatives"`
	Extra        Extra  `json:"-"`
}

// Image is one built image, now in local podman storage (or, with
// farm-build --push, in a registry).
type Image struct {
	Platform string `json:"platform"`
	Node     string `json:"node"`
	ID       string `json:"id"`
	Digest   string `json:"digest"`
	Tag      string `json:"tag"`
	// Ref names the image where farm-manifest finds it: a per-platform tag
	// in local storage, or a registry reference with a digest after --push.
	Ref             string  `json:"ref"`
	Emulated        bool    `json:"emulated"`
	Size            int64   `json:"size"`
	BuildSeconds    float64 `json:"build_seconds"`
	TransferSeconds float64 `json:"transfer_seconds"`
	Transfer        string  `json:"transfer"`
	BytesIn         int64   `json:"bytes_in"`
	BytesOut        int64   `json:"bytes_out"`
	Extra           Extra   `json:"-"`
}

// Instance is one entry of a manifest list.
type Instance struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// Manifest is the manifest list farm-manifest made.
type Manifest struct {
	Name      string     `json:"name"`
	ID        string     `json:"id"`
	Digest    string     `json:"digest"`
	Instances []Instance `json:"instances"`
	Pushed    string     `json:"pushed,omitempty"`
	Extra     Extra      `json:"-"`
}

// Error carries a failure in-band, because `a | b` hides the exit code of a.
type Error struct {
	Stage    string `json:"stage"`
	Error    string `json:"error"`
	Platform string `json:"platform,omitempty"`
	Node     string `json:"node,omitempty"`
	Line     int    `json:"line,omitempty"`
	Extra    Extra  `json:"-"`
}

// Kind implements Record.
func (*Node) Kind() string { return KindNode }

// Kind implements Record.
func (*Job) Kind() string { return KindJob }

// Kind implements Record.
func (*Image) Kind() string { return KindImage }

// Kind implements Record.
func (*Manifest) Kind() string { return KindManifest }

// Kind implements Record.
func (*Error) Kind() string { return KindError }

// Reachable reports whether farm-nodes could talk to the node.
func (n *Node) Reachable() bool { return n.Error == "" }

// Redacted returns the URI with any password removed, as every record and log
// line must show it.
func RedactURI(uri string) string {
	at := strings.Index(uri, "@")
	scheme := strings.Index(uri, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return uri
	}
	userinfo := uri[scheme+3 : at]
	if colon := strings.Index(userinfo, ":"); colon >= 0 {
		return uri[:scheme+3] + userinfo[:colon] + ":xxxxx" + uri[at:]
	}
	return uri
}

// MarshalJSON writes "v" and "kind" first, then the known fields in
// declaration order, then unknown fields sorted by name, so output is stable
// (golden files, diffs of saved plans).
func (n Node) MarshalJSON() ([]byte, error) {
	type plain Node
	return marshal(KindNode, plain(n), n.Extra)
}

// MarshalJSON implements json.Marshaler.
func (j Job) MarshalJSON() ([]byte, error) {
	type plain Job
	if j.Alternatives == nil {
		j.Alternatives = []Node{}
	}
	return marshal(KindJob, plain(j), j.Extra)
}

// MarshalJSON implements json.Marshaler.
func (i Image) MarshalJSON() ([]byte, error) {
	type plain Image
	return marshal(KindImage, plain(i), i.Extra)
}

// MarshalJSON implements json.Marshaler.
func (m Manifest) MarshalJSON() ([]byte, error) {
	type plain Manifest
	if m.Instances == nil {
		m.Instances = []Instance{}
	}
	return marshal(KindManifest, plain(m), m.Extra)
}

// MarshalJSON implements json.Marshaler.
func (e Error) MarshalJSON() ([]byte, error) {
	type plain Error
	return marshal(KindError, plain(e), e.Extra)
}

// UnmarshalJSON keeps unknown fields in Extra.
func (n *Node) UnmarshalJSON(b []byte) error {
	type plain Node
	return unmarshal(b, (*plain)(n), &n.Extra)
}

// UnmarshalJSON implements json.Unmarshaler.
func (j *Job) UnmarshalJSON(b []byte) error {
	type plain Job
	return unmarshal(b, (*plain)(j), &j.Extra)
}

// UnmarshalJSON implements json.Unmarshaler.
func (i *Image) UnmarshalJSON(b []byte) error {
	type plain Image
	return unmarshal(b, (*plain)(i), &i.Extra)
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Manifest) UnmarshalJSON(b []byte) error {
	type plain Manifest
	return unmarshal(b, (*plain)(m), &m.Extra)
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *Error) UnmarshalJSON(b []byte) error {
	type plain Error
	return unmarshal(b, (*plain)(e), &e.Extra)
}

// header names the fields every record has; they are never kept in Extra.
var header = map[string]bool{"v": true, "kind": true}

func marshal(kind string, v any, extra Extra) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"v":%d,"kind":%q`, Version, kind)
	if inner := bytes.TrimSpace(body[1 : len(body)-1]); len(inner) > 0 {
		buf.WriteByte(',')
		buf.Write(inner)
	}
	known := fieldNames(reflect.TypeOf(v))
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !known[k] && !header[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func unmarshal(b []byte, v any, extra *Extra) error {
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	known := fieldNames(reflect.TypeOf(v).Elem())
	for k, raw := range all {
		if known[k] || header[k] {
			continue
		}
		if *extra == nil {
			*extra = Extra{}
		}
		(*extra)[k] = raw
	}
	return nil
}

// fieldNames lists the JSON names of a struct's fields.
func fieldNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}
