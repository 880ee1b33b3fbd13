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
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
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
	KindEnd      = "end"
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
	// CgroupManager saves farm-build a GET /info per job (0.2 s on podman
	// 4.3) before each build can start.
	CgroupManager string `json:"cgroup_manager,omitempty"`
	// CgroupVersion is the node's cgroup version: "v1" or "v2".
	CgroupVersion string `json:"cgroup_version,omitempty"`
	// Rootless: the node's podman service runs as an unprivileged user;
	// farm-build then gives builds no cgroup parent (the user cannot
	// create cgroups there).
	Rootless bool `json:"rootless,omitempty"`
	// Stop is how farm-build stops a cancelled or failed-over build on the
	// node: StopCgroup, StopRuntime or StopNone. Empty when unknown (a
	// record from an older farm-nodes): farm-build then asks the node.
	Stop string `json:"stop,omitempty"`
	// GraphRoot is where the node's podman service keeps its images
	// (podman info: store.graphRoot). farm-build looks there for what dead
	// runs left, and would otherwise ask the node's /info once more per run:
	// up to 0.8 s on a store of a few hundred images.
	GraphRoot string `json:"graph_root,omitempty"`
	// Load is how busy the node was when farm-nodes asked; nil when it
	// could not tell (no shell on the node, a tcp:// connection) or the
	// record comes from an older farm-nodes or a hand.
	Load  *Load `json:"load,omitempty"`
	Extra Extra `json:"-"`
}

// Load is a node's current load, as farm-nodes saw it: farm-plan ranks a
// loaded node lower, so that runs started close together spread over the
// farm instead of piling on the same nodes.
type Load struct {
	// Builds is how many builds the node's podman service runs now: the
	// larger of its RUN steps, for any client (its buildah-oci-runtime
	// children), and the farm jobs holding a build claim on it (from their
	// upload to their image's transfer).
	Builds int `json:"builds"`
	// Average is the 1-minute load average of the node's machine
	// (/proc/loadavg), shared by every service on that machine.
	Average float64 `json:"average"`
	// StorageFree is how many bytes are free in the filesystem of the
	// service's image storage (podman info: graphRootAllocated minus
	// graphRootUsed).
	StorageFree int64 `json:"storage_free"`
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
	// Phases says when each phase of the job began and ended, on every
	// node it ran on (a failed-over attempt's phases come first).
	Phases []Phase `json:"phases,omitempty"`
	Extra  Extra   `json:"-"`
}

// Phase is one phase of a job: what it was (PhaseContext, PhaseConnect,
// ...), on which node ("" for the client's own work), and when it began and
// ended, as Stamp writes times. Error is set on the phase an attempt
// failed in.
type Phase struct {
	Name  string `json:"name"`
	Node  string `json:"node"`
	Start string `json:"start"`
	End   string `json:"end"`
	Error string `json:"error,omitempty"`
}

// The phases of a job, in the order they happen.
const (
	// PhaseContext: farm-build walks and compresses the context, once for
	// every job of the run, on the client.
	PhaseContext = "context"
	// PhaseConnect: the node's connection is opened (or reused) and its
	// kind learnt.
	PhaseConnect = "connect"
	// PhaseUpload: the compressed context travels to the node.
	PhaseUpload = "upload"
	// PhaseBuild: the node builds, from the context's last byte to the
	// image id.
	PhaseBuild = "build"
	// PhasePush: the node pushes the image to the user's registry (--push).
	PhasePush = "push"
	// PhasePull: the image comes back into local storage.
	PhasePull = "pull"
)

// StampLayout is how a phase's times are written: RFC 3339 in UTC, with
// milliseconds.
const StampLayout = "2006-01-02T15:04:05.000Z07:00"

// Stamp writes t as a phase's start or end.
func Stamp(t time.Time) string { return t.UTC().Format(StampLayout) }

// Times parses the phase's start and end.
func (p Phase) Times() (start, end time.Time, err error) {
	if start, err = time.Parse(time.RFC3339Nano, p.Start); err != nil {
		return start, end, fmt.Errorf("phase %q: start: %w", p.Name, err)
	}
	if end, err = time.Parse(time.RFC3339Nano, p.End); err != nil {
		return start, end, fmt.Errorf("phase %q: end: %w", p.Name, err)
	}
	if end.Before(start) {
		return start, end, fmt.Errorf("phase %q ends (%s) before it starts (%s)", p.Name, p.End, p.Start)
	}
	return start, end, nil
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
	// Phases: as in Image, up to the failure (farm-build's job errors).
	Phases []Phase `json:"phases,omitempty"`
	Extra  Extra   `json:"-"`
}

// End is the last record of a complete stream. Every stage writes it after
// everything else it had to say, unless it was interrupted; a reader that
// meets the end of its input without one knows the stage before it died
// (SIGKILL, a crash, Ctrl-C) and its output may be incomplete. A stage that
// passes records on passes the end record on last, or writes its own.
type End struct {
	// Stage wrote the record (informational: any end record ends a stream).
	Stage string `json:"stage,omitempty"`
	Extra Extra  `json:"-"`
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

// Kind implements Record.
func (*End) Kind() string { return KindEnd }

// Reachable reports whether farm-nodes could talk to the node.
func (n *Node) Reachable() bool { return n.Error == "" }

// How a build is stopped on a node (Node.Stop).
const (
	// StopCgroup: the build runs in a cgroup of its own (a cgroup parent
	// per job); its processes are killed through that cgroup, and through
	// its steps' OCI runtime state as with StopRuntime.
	StopCgroup = "cgroup"
	// StopRuntime: the node cannot give a build a cgroup (rootless); each
	// RUN step is found through its OCI runtime bundle, which farm marks
	// with the job's id, and its init process is killed, ending the step's
	// PID namespace.
	StopRuntime = "runtime"
	// StopNone: farm cannot run a command on the node (a tcp:// connection
	// has no shell): a cancelled build keeps running there until it ends.
	StopNone = "none"
)

// RedactURI returns the URI with any password removed, as every record and
// log line must show it. It holds for anything that looks like a URI with a
// password, valid or not, because a malformed URI is printed in the very
// error that says it is malformed.
//
// A valid URL with a host: only its authority (between "://" and the next
// "/", "?" or "#") can hold a password, and the userinfo ends at the last
// "@" there; "@" and ":" in the path are not a password. Anything else that
// is not a plain path ("user:pass@host", "ssh:user:pass@host",
// "ssh:/user:pass@host", a "/" in the password) is taken apart by
// redactMalformed.
func RedactURI(uri string) string {
	u, err := url.Parse(uri)
	switch {
	case err == nil && u.Host != "" && !strings.ContainsAny(beforeAt(uri), "?#") &&
		(strings.HasPrefix(u.Host, "[") || !strings.Contains(u.Hostname(), ":")):
		start := strings.Index(uri, "//") + 2
		authority := uri[start:]
		if end := strings.IndexAny(authority, "/?#"); end >= 0 {
			authority = authority[:end]
		}
		return redactUserinfo(uri, start, start+strings.LastIndex(authority, "@"))
	case err == nil && u.Scheme == "" && u.Opaque == "" && u.Host == "" && !strings.HasPrefix(uri, "//"):
		return uri // a path
	}
	return redactMalformed(uri)
}

// beforeAt is the text between "//" and the last "@" before the first "/"
// after it: a "?" or "#" there makes a URL that parses, with the password's
// tail as its query or fragment ("ssh://u:1#x@host/sock").
func beforeAt(uri string) string {
	rest := uri[strings.Index(uri, "//")+2:]
	if slash := strings.Index(rest, "/"); slash >= 0 {
		rest = rest[:slash]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return rest[:at]
	}
	return ""
}

// redactMalformed: the userinfo starts after a leading "//" or "scheme://",
// after a leading
// "ssh:", "ssh:/", "tcp:"... (slashes missing), or at the start (no scheme);
// it ends at the last "@" before the first "/", "?" or "#" that follows the
// first "@": a password may contain "@", ":" and, typed, even "/".
func redactMalformed(uri string) string {
	start := 0
	if i := strings.Index(uri, "//"); i == 0 || i > 0 && isScheme(uri[:i-1]) && uri[i-1] == ':' {
		start = i + 2
	} else if scheme, rest, ok := strings.Cut(uri, ":"); ok && knownScheme(scheme) {
		start = len(uri) - len(strings.TrimLeft(rest, "/"))
	}
	first := strings.Index(uri[start:], "@")
	if first < 0 {
		return uri
	}
	end := len(uri)
	if slash := strings.IndexAny(uri[start+first:], "/?#"); slash >= 0 {
		end = start + first + slash
	}
	return redactUserinfo(uri, start, start+strings.LastIndex(uri[start:end], "@"))
}

// redactUserinfo replaces the password of the userinfo uri[start:at] (after
// its first ":") with xxxxx; at < start means there is no userinfo.
func redactUserinfo(uri string, start, at int) string {
	if at < start {
		return uri
	}
	colon := strings.Index(uri[start:at], ":")
	if colon < 0 {
		return uri
	}
	return uri[:start+colon] + ":xxxxx" + uri[at:]
}

// isScheme reports whether s is a URL scheme (RFC 3986 section 3.1).
func isScheme(s string) bool {
	for i, c := range s {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// knownScheme is a scheme a connection URI may have (podman's, and the
// ones users type by mistake).
func knownScheme(s string) bool {
	switch strings.ToLower(s) {
	case "ssh", "unix", "tcp", "http", "https":
		return true
	}
	return false
}

// MarshalJSON writes "v" and "kind" first, then the known fields in
// declaration order, then unknown fields sorted by name, so output is stable
// (golden files, diffs of saved plans).
func (n Node) MarshalJSON() ([]byte, error) {
	type plain Node
	// Lists are [] rather than null, as in Job and Manifest, so a reader in
	// any language can iterate them without a null check.
	if n.Native == nil {
		n.Native = []string{}
	}
	if n.Emulated == nil {
		n.Emulated = []string{}
	}
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

// MarshalJSON implements json.Marshaler.
func (e End) MarshalJSON() ([]byte, error) {
	type plain End
	return marshal(KindEnd, plain(e), e.Extra)
}

// UnmarshalJSON keeps unknown fields in Extra.
func (n *Node) UnmarshalJSON(b []byte) error { return unmarshal(b, n) }

func (n *Node) decodeFields(b []byte, all map[string]json.RawMessage) error {
	type plain Node
	return decodeFields(b, all, (*plain)(n), &n.Extra)
}

// UnmarshalJSON implements json.Unmarshaler.
func (j *Job) UnmarshalJSON(b []byte) error { return unmarshal(b, j) }

func (j *Job) decodeFields(b []byte, all map[string]json.RawMessage) error {
	type plain Job
	return decodeFields(b, all, (*plain)(j), &j.Extra)
}

// UnmarshalJSON implements json.Unmarshaler.
func (i *Image) UnmarshalJSON(b []byte) error { return unmarshal(b, i) }

func (i *Image) decodeFields(b []byte, all map[string]json.RawMessage) error {
	type plain Image
	err := decodeFields(b, all, (*plain)(i), &i.Extra)
	i.Phases = noPhases(i.Phases)
	return err
}

// noPhases makes "phases":[] the same record as no phases at all: the
// field is omitted when empty, and a record must read back as it was
// written (FuzzDecode found the difference).
func noPhases(p []Phase) []Phase {
	if len(p) == 0 {
		return nil
	}
	return p
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Manifest) UnmarshalJSON(b []byte) error { return unmarshal(b, m) }

func (m *Manifest) decodeFields(b []byte, all map[string]json.RawMessage) error {
	type plain Manifest
	return decodeFields(b, all, (*plain)(m), &m.Extra)
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *Error) UnmarshalJSON(b []byte) error { return unmarshal(b, e) }

func (e *Error) decodeFields(b []byte, all map[string]json.RawMessage) error {
	type plain Error
	err := decodeFields(b, all, (*plain)(e), &e.Extra)
	e.Phases = noPhases(e.Phases)
	return err
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *End) UnmarshalJSON(b []byte) error { return unmarshal(b, e) }

func (e *End) decodeFields(b []byte, all map[string]json.RawMessage) error {
	type plain End
	return decodeFields(b, all, (*plain)(e), &e.Extra)
}

// fieldsDecoder decodes a record whose object has already been parsed into
// a map of its fields. Decode has that map from reading the header; using
// it saves parsing every line a second time.
type fieldsDecoder interface {
	decodeFields(b []byte, all map[string]json.RawMessage) error
}

var (
	_ fieldsDecoder = (*Node)(nil)
	_ fieldsDecoder = (*Job)(nil)
	_ fieldsDecoder = (*Image)(nil)
	_ fieldsDecoder = (*Manifest)(nil)
	_ fieldsDecoder = (*Error)(nil)
	_ fieldsDecoder = (*End)(nil)
)

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
		if raw := extra[k]; len(raw) > 0 {
			buf.Write(raw)
		} else {
			// A nil RawMessage means null, as encoding/json writes it;
			// writing nothing would make the whole line invalid.
			buf.WriteString("null")
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func unmarshal(b []byte, r fieldsDecoder) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	return r.decodeFields(b, all)
}

// decodeFields decodes the known fields of b into v and keeps the others
// (all but the header) in extra. all is b parsed into a map.
func decodeFields(b []byte, all map[string]json.RawMessage, v any, extra *Extra) error {
	known := fieldNames(reflect.TypeOf(v).Elem())
	shadows := false
	for k, raw := range all {
		if known[k] || header[k] {
			continue
		}
		if foldsToKnown(k, known) {
			shadows = true
		}
		if *extra == nil {
			*extra = Extra{}
		}
		(*extra)[k] = raw
	}
	if shadows {
		// encoding/json matches object keys to fields ignoring case (and
		// folding "ſ" to "s", "K" to "k"), so an unknown field such as
		// "NAME" would overwrite "name" and also be kept in Extra. Field
		// names are exact in this format: decode the known fields alone.
		exact := make(map[string]json.RawMessage, len(known))
		for k, raw := range all {
			if known[k] {
				exact[k] = raw
			}
		}
		var err error
		if b, err = json.Marshal(exact); err != nil {
			return err
		}
	}
	return json.Unmarshal(b, v)
}

// foldsToKnown reports whether encoding/json would match key to one of the
// known field names although it is not one of them exactly.
func foldsToKnown(key string, known map[string]bool) bool {
	for name := range known {
		if strings.EqualFold(key, name) {
			return true
		}
	}
	return false
}

// fieldNamesCache maps a struct type to its JSON field names. The set never
// changes for a type, and building it for every record cost about 5% of the
// time and 12% of the memory of decoding (BenchmarkDecodeNode).
var fieldNamesCache sync.Map // reflect.Type -> map[string]bool

// fieldNames lists the JSON names of a struct's fields. The map is shared:
// callers must not change it.
func fieldNames(t reflect.Type) map[string]bool {
	if names, ok := fieldNamesCache.Load(t); ok {
		return names.(map[string]bool)
	}
	names := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	fieldNamesCache.Store(t, names)
	return names
}
