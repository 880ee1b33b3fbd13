package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/farm-build/farm/lib/cachedir"
)

// InfoCache keeps what a node's podman info said, for a while, so that
// the next farm-nodes of a pipeline run soon after skips that call: podman
// computes its info from its whole store (0.4-1 s on a store of a few
// hundred images, most of a probe). Only what does not change while the
// service runs the same podman is kept: platform, version, cpus, memory,
// rootless, cgroups, the storage's path. The load, the storage's free
// space and the emulated platforms are read live on every probe, and a
// cached entry is used only while the service still answers (its ping)
// with the version it had: an upgraded or replaced podman is asked again.
type InfoCache struct {
	// Dir holds one file per connection URI; farm's cache directory
	// "nodes" (~/.cache/farm/nodes) when empty.
	Dir string
	// TTL is how long an entry is used; 0 turns the cache off.
	TTL time.Duration
}

// DefaultInfoCacheTTL is farm-nodes' --cache-ttl default: long enough for
// the runs of one edit-build loop, short enough that a change to a node's
// storage or cgroup configuration is seen within minutes even when its
// podman stays the same.
const DefaultInfoCacheTTL = 5 * time.Minute

// cachedInfo is one entry: the info as podman gave it (its storage's
// sizes are not used) and when.
type cachedInfo struct {
	Read time.Time `json:"read"`
	Info Info      `json:"info"`
}

func (c InfoCache) path(uri string) (string, error) {
	dir := c.Dir
	if dir == "" {
		d, err := cachedir.For("nodes")
		if err != nil {
			return "", err
		}
		dir = d
	}
	// A hash: the URI may hold a user's password.
	sum := sha256.Sum256([]byte(uri))
	return filepath.Join(dir, hex.EncodeToString(sum[:12])+".json"), nil
}

// load returns the entry for uri younger than the TTL, if any.
func (c InfoCache) load(uri string, now time.Time) (*Info, bool) {
	if c.TTL <= 0 {
		return nil, false
	}
	p, err := c.path(uri)
	if err != nil {
		return nil, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	var e cachedInfo
	if json.Unmarshal(b, &e) != nil || e.Info.Store.GraphRoot == "" || e.Info.Version.Version == "" {
		return nil, false
	}
	if age := now.Sub(e.Read); age < 0 || age >= c.TTL {
		return nil, false
	}
	return &e.Info, true
}

// store writes the entry for uri; a failure only costs the next probe the
// info call, so it is not reported.
func (c InfoCache) store(uri string, info *Info, now time.Time) {
	if c.TTL <= 0 || info.Store.GraphRoot == "" || info.Version.Version == "" {
		return // off, or an entry load would refuse
	}
	p, err := c.path(uri)
	if err != nil {
		return
	}
	b, err := json.Marshal(cachedInfo{Read: now, Info: *info})
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	// Whole or not at all: farm-nodes of concurrent pipelines write at
	// once.
	tmp, err := os.CreateTemp(filepath.Dir(p), ".entry-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
	prune(filepath.Dir(p), now.Add(-max(c.TTL, keepStale)))
}

// keepStale is how long an entry past its TTL stays: URIs that come and go
// (a run's private podman service with --local, a removed connection)
// must not pile up, and a longer --cache-ttl next time may still use it.
const keepStale = 24 * time.Hour

// prune removes the entries (and temporary files of writers that died)
// last written before cutoff.
func prune(dir string, cutoff time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
