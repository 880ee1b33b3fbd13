package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/containers/image/v5/manifest"
	"github.com/farm-build/farm/lib/cachedir"
	"github.com/farm-build/farm/lib/platform"
	"github.com/opencontainers/go-digest"
)

// RepoPrefix starts the name of every repository in the transfer registry.
// Each push gets a repository of its own (RepoFor): docker-registry writes a
// repository's link files in place (truncate, then write), so two pushes of
// one layer into one repository at once, from two runs sharing the storage
// or two platforms of one run, could read a half-written link and fail. A
// layer pushed before is still not uploaded again: the node's blob-info
// cache names the repository it went to, and the node asks the registry to
// mount it from there (a cross-repository mount: one request, no data).
const RepoPrefix = "farm"

// PushTag is the tag of the image in its repository.
const PushTag = "image"

// RepoFor is a new repository name for one push of an image for p.
func RepoFor(p platform.Platform) string {
	return RepoPrefix + "/" + tagFor(p) + "-" + randomHex(6)
}

// DefaultCacheDir is where the transfer registry keeps its blobs between
// runs: $XDG_CACHE_HOME/farm/registry, else ~/.cache/farm/registry. Keeping
// them is the point: a base layer uploaded once is never uploaded again.
func DefaultCacheDir() (string, error) { return cachedir.For("registry") }

// RunRegistry is the run's own registry (the user's is lib/registry's),
// served from inside farm-build on 127.0.0.1 only, from Dir, for one
// farm-build run. It is docker/distribution's registry (the code of Debian's
// docker-registry) as a library: the same storage layout and garbage
// collection, nothing to install. Several runs may share Dir at once (see
// docs/transfer.md: the filesystem driver writes content-addressed blobs by
// rename).
type RunRegistry struct {
	Dir  string
	addr string // 127.0.0.1:PORT
	srv  *http.Server
	done chan struct{}
	http *http.Client
	lock *cacheLock // shared while serving: no prune under a running registry
	// probes answers the reachability probes (see Puller.localRoute).
	probes *probeHandler
}

// RunRegistryOptions configure StartRunRegistry.
type RunRegistryOptions struct {
	// Dir is the storage directory; empty: DefaultCacheDir.
	Dir string
	// MaxAge prunes pushes older than this from Dir before serving; zero:
	// DefaultCacheMaxAge.
	MaxAge time.Duration
	Log    *slog.Logger
}

// StartRunRegistry prunes the cache if no other run serves it, then serves
// the registry on a free port of 127.0.0.1. Close stops it.
func StartRunRegistry(ctx context.Context, opts RunRegistryOptions) (*RunRegistry, error) {
	if opts.Dir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		opts.Dir = d
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer registry storage: %w", err)
	}
	purgeUploads(opts.Dir, 24*time.Hour)
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultCacheMaxAge
	}
	lock, exclusive, err := lockCache(opts.Dir)
	if err != nil {
		return nil, err
	}
	if exclusive {
		// No other run's registry serves this cache: prune it now. A
		// failed prune costs space, not the run.
		if err := pruneCache(ctx, opts.Dir, opts.MaxAge, opts.Log); err != nil {
			opts.Log.Warn("transfer registry cache not pruned", "error", err)
		}
		if err := lock.share(); err != nil {
			lock.release()
			return nil, fmt.Errorf("transfer registry cache lock: %w", err)
		}
	}
	r, err := serve(ctx, opts.Dir, opts.Log)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("starting the transfer registry: %w", err)
	}
	r.lock = lock
	return r, nil
}

// serve listens on a free port of loopback (bound here, so no other process
// can take it in between) and serves the registry there.
func serve(ctx context.Context, dir string, log *slog.Logger) (*RunRegistry, error) {
	h, err := NewRegistryHandler(ctx, dir, log)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on 127.0.0.1: %w", err)
	}
	probes := &probeHandler{next: h}
	r := &RunRegistry{
		Dir: dir, addr: l.Addr().String(), done: make(chan struct{}), probes: probes,
		srv: &http.Server{Handler: probes, ReadHeaderTimeout: 30 * time.Second},
		// The registry is on loopback: a proxy from the environment
		// (HTTP_PROXY) must not be asked for it.
		http: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
	}
	go func() { r.srv.Serve(l); close(r.done) }()
	log.Debug("serving the transfer registry", "addr", r.addr, "dir", dir)
	return r, nil
}

// Addr is the registry's address on this machine: 127.0.0.1:PORT.
func (r *RunRegistry) Addr() string { return r.addr }

// Close stops serving (requests in flight get 10 s to finish) and releases
// the cache. The storage directory stays.
func (r *RunRegistry) Close() error {
	if r == nil || r.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		r.srv.Close()
	}
	<-r.done
	r.srv = nil
	r.lock.release()
	r.lock = nil
	return nil
}

// Manifest is what the transfer registry holds for a pushed image.
type Manifest struct {
	Digest    string // sha256:... of the manifest as stored
	MediaType string
	Config    string // digest of the config: the image ID
	Layers    []Descriptor
}

// Descriptor is one layer of a manifest.
type Descriptor struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// ManifestOf reads the manifest repo:PushTag and checks that its bytes
// match the digest the registry gives for them.
func (r *RunRegistry) ManifestOf(ctx context.Context, repo string) (*Manifest, error) {
	return fetchManifest(ctx, r.http, "http://"+r.addr, repo, PushTag)
}

func fetchManifest(ctx context.Context, client *http.Client, base, repo, ref string) (*Manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("manifest %s:%s: %s: %s", repo, ref, resp.Status, bytes.TrimSpace(body))
	}
	m := &Manifest{Digest: digest.FromBytes(body).String(), MediaType: resp.Header.Get("Content-Type")}
	if d := resp.Header.Get("Docker-Content-Digest"); d != "" && d != m.Digest {
		return nil, fmt.Errorf("manifest %s:%s: the registry says digest %s, its bytes are %s", repo, ref, d, m.Digest)
	}
	mt := manifest.NormalizedMIMEType(m.MediaType)
	if manifest.MIMETypeIsMultiImage(mt) {
		return nil, fmt.Errorf("manifest %s:%s is a list (%s): not a single image", repo, ref, m.MediaType)
	}
	parsed, err := manifest.FromBlob(body, mt)
	if err != nil {
		return nil, fmt.Errorf("manifest %s:%s: %w", repo, ref, err)
	}
	config := parsed.ConfigInfo()
	if config.Digest == "" {
		return nil, fmt.Errorf("manifest %s:%s has no config (%s): not a single image", repo, ref, m.MediaType)
	}
	m.Config = config.Digest.String()
	for _, l := range parsed.LayerInfos() {
		m.Layers = append(m.Layers, Descriptor{Digest: l.Digest.String(), Size: l.Size})
	}
	return m, nil
}

// purgeUploads removes upload directories older than age: what interrupted
// pushes left behind. (The registry's own purger waits up to an hour before
// its first pass, longer than a run's registry lives.)
func purgeUploads(dir string, age time.Duration) {
	var uploads []string
	for _, prefix := range []string{RepoPrefix, CacheRepoPrefix} {
		u, _ := filepath.Glob(filepath.Join(dir, "docker", "registry", "v2", "repositories", prefix, "*", "_uploads", "*"))
		uploads = append(uploads, u...)
	}
	for _, u := range uploads {
		if fi, err := os.Stat(u); err == nil && time.Since(fi.ModTime()) > age {
			os.RemoveAll(u)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
