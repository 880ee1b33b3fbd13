package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containers/image/v5/manifest"
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

// RegistryBinary is Debian's distribution registry (package docker-registry).
const RegistryBinary = "docker-registry"

// DefaultCacheDir is where the transfer registry keeps its blobs between
// runs: $XDG_CACHE_HOME/farm/registry, else ~/.cache/farm/registry. Keeping
// them is the point: a base layer uploaded once is never uploaded again.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the transfer registry: %w", err)
	}
	return filepath.Join(dir, "farm", "registry"), nil
}

// RunRegistry is the run's own registry (the user's is lib/registry's): a
// docker-registry process serving Dir on 127.0.0.1 only, for one
// farm-build run. Several may share Dir at once (see docs/transfer.md:
// the filesystem driver writes content-addressed blobs by rename).
type RunRegistry struct {
	Dir  string
	addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
	done chan struct{}
	tmp  string // config and log
	http *http.Client
	lock *cacheLock // shared while serving: no prune under a running registry
}

// RunRegistryOptions configure StartRunRegistry.
type RunRegistryOptions struct {
	// Binary is the docker-registry executable; empty: looked up in PATH.
	Binary string
	// Dir is the storage directory; empty: DefaultCacheDir.
	Dir string
	// MaxAge prunes pushes older than this from Dir before serving; zero:
	// DefaultCacheMaxAge.
	MaxAge time.Duration
	Log    *slog.Logger
}

// ErrNoRegistryBinary means docker-registry is not installed here.
var ErrNoRegistryBinary = errors.New("docker-registry is not installed on this machine (Debian/Ubuntu: apt-get install docker-registry)")

// FindRegistryBinary returns the docker-registry executable.
func FindRegistryBinary() (string, error) {
	p, err := exec.LookPath(RegistryBinary)
	if err != nil {
		return "", ErrNoRegistryBinary
	}
	return p, nil
}

// StartRunRegistry starts a registry on a free port of 127.0.0.1 and waits
// until it answers. Close stops it.
func StartRunRegistry(ctx context.Context, opts RunRegistryOptions) (*RunRegistry, error) {
	if opts.Binary == "" {
		b, err := FindRegistryBinary()
		if err != nil {
			return nil, err
		}
		opts.Binary = b
	}
	if opts.Dir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		opts.Dir = d
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
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
		if err := pruneCache(opts.Binary, opts.Dir, opts.MaxAge, opts.Log); err != nil {
			opts.Log.Warn("transfer registry cache not pruned", "error", err)
		}
		if err := lock.share(); err != nil {
			lock.release()
			return nil, fmt.Errorf("transfer registry cache lock: %w", err)
		}
	}
	// The port is picked by binding :0 and releasing it; another process
	// may take it before the registry binds it. The registry then exits
	// with "address already in use", and we try another.
	var lastErr error
	for try := 0; try < 5; try++ {
		r, err := startOnce(ctx, opts)
		if err == nil {
			r.lock = lock
			return r, nil
		}
		lastErr = err
		if ctx.Err() != nil || !errors.Is(err, errPortTaken) {
			break
		}
	}
	lock.release()
	return nil, fmt.Errorf("starting the transfer registry (%s): %w", opts.Binary, lastErr)
}

var errPortTaken = errors.New("address already in use")

func startOnce(ctx context.Context, opts RunRegistryOptions) (*RunRegistry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "farm-registry-")
	if err != nil {
		return nil, err
	}
	nonce := randomHex(16)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(tmp, "config.yml")
	if err := os.WriteFile(conf, []byte(registryConfig(opts.Dir, addr, nonce, randomHex(32))), 0o600); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	logPath := filepath.Join(tmp, "registry.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(opts.Binary, "serve", conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = registryEnv(os.Environ())
	detach(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	r := &RunRegistry{
		Dir: opts.Dir, addr: addr, cmd: cmd, done: make(chan struct{}), tmp: tmp,
		// The registry is on loopback: a proxy from the environment
		// (HTTP_PROXY) must not be asked for it.
		http: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
	}
	go func() { cmd.Wait(); close(r.done) }()
	opts.Log.Debug("starting the transfer registry", "addr", addr, "pid", cmd.Process.Pid, "dir", opts.Dir, "log", logPath)

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case <-r.done:
			out, _ := os.ReadFile(logPath)
			r.Close()
			msg := lastLines(string(out), 5)
			if strings.Contains(msg, "address already in use") {
				return nil, fmt.Errorf("%w: %s", errPortTaken, msg)
			}
			return nil, fmt.Errorf("it exited at start: %s", msg)
		case <-ctx.Done():
			r.Close()
			return nil, context.Cause(ctx)
		case <-deadline.C:
			r.Close()
			return nil, errors.New("it did not answer within 30s")
		case <-time.After(50 * time.Millisecond):
		}
		if r.answers(ctx, nonce) {
			opts.Log.Debug("transfer registry ready", "addr", addr, "pid", cmd.Process.Pid)
			return r, nil
		}
	}
}

// registryConfig is the registry's whole configuration: loopback only, no
// auth (it holds nothing but what this user's own nodes push, and only this
// machine can reach it), no deletes, and a header carrying nonce so that we
// know the process answering on the port is ours.
func registryConfig(dir, addr, nonce, secret string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // JSON strings are YAML strings
	return fmt.Sprintf(`# Written by farm-build for one run; see docs/transfer.md.
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: false
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
  relativeurls: true
  headers:
    X-Farm-Transfer: [%s]
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
`, q(dir), q(addr), q(secret), q(nonce))
}

// registryEnv drops REGISTRY_* variables: docker-registry reads them as
// overrides of its configuration (REGISTRY_HTTP_ADDR=0.0.0.0:5000 would open
// it to the network, and podman's REGISTRY_AUTH_FILE would be taken for an
// auth section), and HTTP proxies, which a registry never needs.
func registryEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGISTRY_") || strings.EqualFold(k, "http_proxy") || strings.EqualFold(k, "https_proxy") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (r *RunRegistry) answers(ctx context.Context, nonce string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/v2/", nil)
	if err != nil {
		return false
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Farm-Transfer") == nonce
}

// Addr is the registry's address on this machine: 127.0.0.1:PORT.
func (r *RunRegistry) Addr() string { return r.addr }

// Pid is the registry process's id.
func (r *RunRegistry) Pid() int { return r.cmd.Process.Pid }

// Close stops the registry (SIGTERM, SIGKILL after 10 s) and waits for it to
// exit. The storage directory stays.
func (r *RunRegistry) Close() error {
	if r == nil || r.cmd == nil {
		return nil
	}
	select {
	case <-r.done:
	default:
		terminate(r.cmd.Process)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	}
	if r.tmp != "" {
		os.RemoveAll(r.tmp)
		r.tmp = ""
	}
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
	uploads, _ := filepath.Glob(filepath.Join(dir, "docker", "registry", "v2", "repositories", RepoPrefix, "*", "_uploads", "*"))
	for _, u := range uploads {
		if fi, err := os.Stat(u); err == nil && time.Since(fi.ModTime()) > age {
			os.RemoveAll(u)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
