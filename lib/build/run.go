package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/storage/pkg/stringid"
	"github.com/docker/go-units"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/progress"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/registry"
	"github.com/farm-build/farm/lib/transfer"
)

// Config is what every job of a run shares.
type Config struct {
	Spec Spec
	// Tag is the -t reference; each platform's image is tagged
	// TAG-os-arch[-variant] on the node and locally (see PlatformTag).
	Tag string
	// Context returns a new reader over the same compressed context bytes;
	// every node gets the very same bytes.
	Context     func() io.Reader
	ContextSize int64
	// Jobs bounds the builds running at once (0: no bound).
	Jobs int
	// Timeout bounds each job's build and transfer (0: none).
	Timeout time.Duration
	// Cleanup removes the built image from the node once it is local.
	Cleanup       bool
	ArchiveFormat string
	Transfer      string // transfer.ModeAuto (also when empty), ModeArchive or ModeRegistry: --transfer
	// TransferCacheMaxAge prunes older pushes from the transfer registry's
	// cache (0: transfer.DefaultCacheMaxAge).
	TransferCacheMaxAge time.Duration
	SSH                 conn.SSHOptions
	// Push, when set, makes each node push its image to the registry of
	// Tag instead of sending it back here (farm-build --push).
	Push *registry.Options
	// Local is a pkg/bindings context for this machine's podman service
	// (unused with Push).
	Local context.Context
	Log   *slog.Logger
	// Progress shows each job's build output and phase on stderr.
	Progress progress.View
	Stage    string
}

// Runner runs jobs as they arrive and reports each as an image or an error
// record.
type Runner struct {
	cfg      Config
	sessions *sessionPool
	sem      chan struct{}

	mu        sync.Mutex
	platforms map[string]bool
	added     []string // local image ids this run added, removed on cancel

	hub transfer.Hub // the transfer registry, started by the first job that needs it
}

// NewRunner prepares a run.
func NewRunner(cfg Config) *Runner {
	r := &Runner{cfg: cfg, sessions: newSessionPool(cfg.SSH), platforms: map[string]bool{}}
	r.hub.CacheMaxAge = cfg.TransferCacheMaxAge
	if cfg.Jobs > 0 {
		r.sem = make(chan struct{}, cfg.Jobs)
	}
	return r
}

// Close ends every node connection and stops the transfer registry.
func (r *Runner) Close() { r.sessions.closeAll(); r.hub.Close() }

// Outcome is the record one job produced: an *record.Image or *record.Error.
type Outcome = record.Record

// Run builds one job and returns its outcome. It is safe to call from many
// goroutines at once.
func (r *Runner) Run(ctx context.Context, job *record.Job) Outcome {
	plat, err := platform.Parse(job.Platform)
	if err != nil {
		return r.errorRecord(job, job.Node.Name, fmt.Errorf("job platform: %w", err))
	}
	r.mu.Lock()
	dup := r.platforms[plat.String()]
	r.platforms[plat.String()] = true
	r.mu.Unlock()
	if dup {
		return r.errorRecord(job, job.Node.Name, fmt.Errorf("a second job for %s: a manifest list holds one image per platform", plat))
	}
	if r.sem != nil {
		select {
		case r.sem <- struct{}{}:
			defer func() { <-r.sem }()
		case <-ctx.Done():
			return r.errorRecord(job, job.Node.Name, context.Cause(ctx))
		}
	}

	candidates := append([]record.Node{job.Node}, job.Alternatives...)
	var lastErr error
	lastNode := job.Node.Name
	for i, n := range candidates {
		if !n.Reachable() {
			continue
		}
		if i > 0 {
			r.cfg.Log.Warn("failing over", "platform", plat.String(), "from", lastNode, "to", n.Name, "reason", lastErr)
		}
		img, err := r.runOn(ctx, job, plat, n)
		if err == nil {
			return img
		}
		lastErr, lastNode = err, n.Name
		var failed *FailedError
		if errors.As(err, &failed) || ctx.Err() != nil || errors.Is(err, errLocal) {
			break
		}
		// The node failed: the next job for it must reconnect rather than
		// reuse a connection to a service that may be gone.
		r.sessions.drop(n.Name)
	}
	if lastErr == nil {
		lastErr = errors.New("no reachable node in the job or its alternatives")
	}
	return r.errorRecord(job, lastNode, lastErr)
}

// errLocal marks failures on this machine's side: another node would not help.
var errLocal = errors.New("local podman service")

// localURI names the local podman service (a pkg/bindings context) in errors.
func localURI(local context.Context) string {
	if c, err := bindings.GetClient(local); err == nil && c.URI != nil {
		return c.URI.String()
	}
	return "(unknown socket)"
}

// runOn runs the job on node n, showing it as one job in the progress view.
func (r *Runner) runOn(ctx context.Context, job *record.Job, plat platform.Platform, n record.Node) (*record.Image, error) {
	view := r.cfg.Progress.Job(plat.String(), n.Name)
	img, err := r.buildOn(ctx, job, plat, n, view)
	if err != nil {
		view.Done("", err)
		return nil, err
	}
	how := "in local storage as " + img.Ref
	if img.Transfer == "push" {
		how = "pushed as " + img.Ref
	}
	view.Done(fmt.Sprintf("%s %s (build %.1fs, transfer %.1fs, %s in, %s out)", stringid.TruncateID(img.ID), how,
		img.BuildSeconds, img.TransferSeconds, units.BytesSize(float64(img.BytesIn)), units.BytesSize(float64(img.BytesOut))), nil)
	return img, nil
}

func (r *Runner) buildOn(ctx context.Context, job *record.Job, plat platform.Platform, n record.Node, view progress.Job) (*record.Image, error) {
	if r.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.cfg.Timeout, fmt.Errorf("job timed out after %s (--timeout)", r.cfg.Timeout))
		defer cancel()
	}
	where := fmt.Sprintf("%s on %s", plat, n.Name)
	s, err := r.sessions.get(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", where, err)
	}
	nodeCtx, err := s.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", where, err)
	}
	manager := n.CgroupManager
	if manager == "" {
		info, err := node.ReadInfo(nodeCtx)
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", where, err)
		}
		manager = info.Host.CgroupManager
	}
	jobID := newJobID()
	tag, err := PlatformTag(r.cfg.Tag, plat)
	if err != nil {
		return nil, err
	}
	logLine := view.Log
	r.cfg.Log.Debug("building", "platform", plat.String(), "node", n.Name, "job", jobID)

	view.Phase("uploading context")
	start := time.Now()
	id, err := send(nodeCtx, request{
		spec: &r.cfg.Spec, platform: plat, tag: tag, cgroup: cgroupParent(manager, jobID),
		context: r.cfg.Context(), logLine: logLine, onUploaded: func() { view.Phase("building") },
	})
	buildSeconds := time.Since(start).Seconds()
	if err != nil {
		// Whatever failed (the build, the connection, the node's podman
		// service, or we were cancelled), the build's processes may still
		// run on the node: kill them, over SSH, which may well still work.
		r.stopRemote(s, jobID, true)
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("building %s: %w", where, err)
	}
	r.stopRemote(s, jobID, false)

	img := &record.Image{
		Platform: plat.String(), Node: n.Name, ID: id, Tag: r.cfg.Tag, Ref: tag,
		Emulated: !contains(n.Native, plat.String()), BuildSeconds: round(buildSeconds),
		Transfer: "archive", BytesOut: r.cfg.ContextSize, Extra: job.Extra,
	}
	if r.cfg.Push != nil {
		view.Phase("pushing")
		if err := r.push(ctx, nodeCtx, img, logLine); err != nil {
			r.removeOnNode(s, id)
			err = fmt.Errorf("pushing %s from %s: %w", plat, n.Name, err)
			var pe *registry.PushError
			if errors.As(err, &pe) && ctx.Err() == nil {
				// The registry failed, not the node: every alternative
				// would push to the same registry (after retries).
				return nil, &FailedError{Msg: err.Error()}
			}
			return nil, err
		}
		if r.cfg.Cleanup {
			r.removeOnNode(s, id)
		}
		return img, nil
	}
	view.Phase("pulling back")
	if err := r.pullBack(ctx, nodeCtx, s, img, logLine); err != nil {
		if ctx.Err() != nil {
			r.removeOnNode(s, id)
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("pulling %s back from %s: %w", plat, n.Name, err)
	}
	if r.cfg.Cleanup {
		r.removeOnNode(s, id)
	}
	return img, nil
}

func (r *Runner) pullBack(ctx, nodeCtx context.Context, s *conn.Session, img *record.Image, logLine func(string)) error {
	local := conn.WithClientOf(ctx, r.cfg.Local)
	start := time.Now()
	have, err := images.Exists(local, img.ID, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errLocal, err)
	}
	if have {
		logLine("local storage already has " + stringid.TruncateID(img.ID) + ": nothing to transfer")
		img.Transfer = "none"
	} else {
		plat, _ := platform.Parse(img.Platform)
		res, err := r.hub.Pull(ctx, transfer.Job{Mode: r.cfg.Transfer, Session: s, Node: nodeCtx, Local: local,
			ID: img.ID, Ref: img.Ref, Platform: plat, Log: r.cfg.Log, Note: logLine})
		// What a registry transfer moved counts even when it failed part
		// way and the archive follows: those bytes crossed the link too.
		img.BytesIn, img.BytesOut = res.In, img.BytesOut+res.Out
		if errors.Is(err, transfer.ErrUseArchive) {
			logLine(fmt.Sprintf("pulling back %s as %s", stringid.TruncateID(img.ID), r.cfg.ArchiveFormat))
			var n int64
			n, err = transfer.Archive(nodeCtx, local, img.ID, r.cfg.ArchiveFormat)
			img.BytesIn += n
		} else if err == nil {
			img.Transfer = "registry"
		}
		var localErr *transfer.LocalError
		if errors.As(err, &localErr) {
			return fmt.Errorf("%w %s: %v", errLocal, localURI(r.cfg.Local), err)
		}
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.added = append(r.added, img.ID)
		r.mu.Unlock()
	}
	ref, err := reference.ParseNormalizedNamed(img.Ref)
	if err != nil {
		return err
	}
	tagged, _ := ref.(reference.NamedTagged)
	if err := images.Tag(local, img.ID, tagged.Tag(), ref.Name(), nil); err != nil {
		return fmt.Errorf("%w: tagging %s: %v", errLocal, img.Ref, err)
	}
	inspect, err := images.GetImage(local, img.ID, nil)
	if err != nil {
		return fmt.Errorf("%w: inspecting %s: %v", errLocal, stringid.TruncateID(img.ID), err)
	}
	img.Digest = inspect.Digest.String()
	img.Size = inspect.Size
	img.TransferSeconds = round(time.Since(start).Seconds())
	return nil
}

// push has the node push the image to the registry under its per-platform
// tag; the record then names it by digest, which is what the list in the
// registry will reference.
func (r *Runner) push(ctx, nodeCtx context.Context, img *record.Image, logLine func(string)) error {
	named, err := reference.ParseNormalizedNamed(img.Ref)
	if err != nil {
		return err
	}
	tagged, _ := named.(reference.NamedTagged)
	logLine("pushing " + stringid.TruncateID(img.ID) + " to " + img.Ref)
	start := time.Now()
	d, err := registry.PushFromNode(ctx, nodeCtx, img.ID, tagged, *r.cfg.Push)
	if err != nil {
		return err
	}
	img.Transfer = "push"
	img.Digest = d.String()
	img.Ref = reference.TrimNamed(named).String() + "@" + d.String()
	img.TransferSeconds = round(time.Since(start).Seconds())
	return nil
}

// Undo removes from local storage what this run added; it runs when the run
// is cancelled, so the local store is left as it was.
func (r *Runner) Undo() {
	r.mu.Lock()
	ids := r.added
	r.added = nil
	r.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	force := true
	if _, errs := images.Remove(conn.WithClientOf(ctx, r.cfg.Local), ids, &images.RemoveOptions{Force: &force}); len(errs) > 0 {
		r.cfg.Log.Warn("removing images this run pulled back", "error", errors.Join(errs...))
	}
}

// stopRemote kills what is left of the job on the node (kill) or just
// removes its empty cgroups. It gets a context of its own: it must run
// after the run's context was cancelled.
func (r *Runner) stopRemote(s *conn.Session, jobID string, kill bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stopJob(ctx, s, jobID, kill); err != nil {
		r.cfg.Log.Warn("clean-up on node", "node", s.Target.Name, "error", err)
	}
}

func (r *Runner) removeOnNode(s *conn.Session, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	force := true
	if _, errs := images.Remove(s.Bind(ctx), []string{id}, &images.RemoveOptions{Force: &force}); len(errs) > 0 {
		r.cfg.Log.Warn("removing image on node", "node", s.Target.Name, "image", stringid.TruncateID(id), "error", errors.Join(errs...))
	}
}

func (r *Runner) errorRecord(job *record.Job, nodeName string, err error) *record.Error {
	return &record.Error{Stage: r.cfg.Stage, Error: err.Error(), Platform: job.Platform, Node: nodeName}
}

// PlatformTag is the per-platform tag of the image for plat: TAG-os-arch
// [-variant]. It keeps each platform's image named in local storage, so that
// `podman image prune` before `podman manifest push --all` cannot remove it,
// and lets two platforms built on one node not steal each other's tag.
func PlatformTag(tag string, plat platform.Platform) (string, error) {
	named, err := ParseTag(tag)
	if err != nil {
		return "", err
	}
	suffix := plat.OS + "-" + plat.Arch
	if plat.Variant != "" {
		suffix += "-" + plat.Variant
	}
	t := named.Tag() + "-" + suffix
	if len(t) > 128 {
		t = t[:128]
	}
	return named.Name() + ":" + t, nil
}

// ParseTag checks a -t reference: a full name with a tag (":latest" when
// none is given), never a digest. host:port/repo:tag is fine.
func ParseTag(tag string) (reference.NamedTagged, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return nil, fmt.Errorf("-t %q: %w", tag, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, fmt.Errorf("-t %q: a digest cannot be a build's name; give a tag", tag)
	}
	return reference.TagNameOnly(named).(reference.NamedTagged), nil
}

// sessionPool keeps one connection per node for the whole run: a node with
// two jobs shares it.
type sessionPool struct {
	ssh     conn.SSHOptions
	mu      sync.Mutex
	m       map[string]*poolEntry
	dropped []*poolEntry
}

type poolEntry struct {
	once sync.Once
	s    *conn.Session
	err  error
}

func newSessionPool(ssh conn.SSHOptions) *sessionPool {
	return &sessionPool{ssh: ssh, m: map[string]*poolEntry{}}
}

func (p *sessionPool) get(ctx context.Context, n record.Node) (*conn.Session, error) {
	p.mu.Lock()
	e, ok := p.m[n.Name]
	if !ok {
		e = &poolEntry{}
		p.m[n.Name] = e
	}
	p.mu.Unlock()
	e.once.Do(func() {
		e.s, e.err = conn.Open(ctx, conn.Target{Name: n.Name, URI: n.URI, Identity: n.Identity}, p.ssh)
	})
	if e.err != nil {
		// A failed connection is not cached: a later job may try again.
		p.mu.Lock()
		if p.m[n.Name] == e {
			delete(p.m, n.Name)
		}
		p.mu.Unlock()
	}
	return e.s, e.err
}

func (p *sessionPool) drop(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Jobs may still use the old connection: it is closed with the rest.
	if e, ok := p.m[name]; ok {
		p.dropped = append(p.dropped, e)
		delete(p.m, name)
	}
}

func (p *sessionPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range append(p.dropped, mapValues(p.m)...) {
		if e.s != nil {
			e.s.Close()
		}
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func newJobID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return "farm-" + hex.EncodeToString(b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if c, err := platform.Canonical(x); err == nil && c == s {
			return true
		}
	}
	return false
}

func round(s float64) float64 { return float64(int64(s*100+0.5)) / 100 }
