package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/storage/pkg/stringid"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/namelock"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/podman"
)

// Transfer modes (farm-build --transfer).
const (
	ModeAuto     = "auto"     // registry where it can work, else archive
	ModeArchive  = "archive"  // always an image archive over the node's connection
	ModeRegistry = "registry" // always the transfer registry; a node that cannot is a failure
)

// CheckMode validates a --transfer value.
func CheckMode(m string) error {
	switch m {
	case ModeAuto, ModeArchive, ModeRegistry:
		return nil
	}
	return fmt.Errorf("want auto, archive or registry, got %q", m)
}

// ErrRegistryUnavailable matches (errors.Is) the errors that say why the
// registry transfer cannot be used for a node or on this machine at all,
// as opposed to a transfer that failed: in auto mode the pull-back falls
// back to an archive and tells the user why.
var ErrRegistryUnavailable = errors.New("registry transfer unavailable")

type unavailableError struct{ reason string }

func (u *unavailableError) Error() string        { return ErrRegistryUnavailable.Error() + ": " + u.reason }
func (u *unavailableError) Is(target error) bool { return target == ErrRegistryUnavailable }

func unavailable(format string, args ...any) error {
	return &unavailableError{reason: fmt.Sprintf(format, args...)}
}

// Options say how a run brings its images back (farm-build --transfer,
// --archive-format, --transfer-cache-max-age).
type Options struct {
	// Mode is ModeAuto (also when empty), ModeArchive or ModeRegistry.
	Mode string
	// ArchiveFormat is DockerArchive (also when empty) or OCIArchive.
	ArchiveFormat string
	// Compression is how nodes compress the layers they push to the
	// transfer registry: CompressionAuto (also when empty),
	// CompressionGzip or CompressionZstd.
	Compression string
	// CacheDir overrides DefaultCacheDir.
	CacheDir string
	// CacheMaxAge overrides DefaultCacheMaxAge.
	CacheMaxAge time.Duration
	Log         *slog.Logger
	// LocalListen listens on the local podman service's side of its SSH
	// connection ((*ssh.Client).Listen), when it is reached over SSH (a
	// podman machine): it then reaches the registry through a forward on
	// that connection, as nodes do. Nil: no SSH connection.
	LocalListen ListenFunc
	// LocalName names the local service in messages (its URI, redacted).
	LocalName string
	// LockDir holds the per-name locks shared with farm-manifest
	// (namelock.DefaultDir when empty).
	LockDir string
}

// Puller owns a run's pull-back: it brings images built on nodes into
// local storage through the run's transfer registry (started on the first
// transfer that needs it, shared by every job) or as an archive, falls back
// from one to the other, counts the bytes, and can undo what it added.
// Close stops the registry.
type Puller struct {
	opts  Options
	local *podman.Client

	mu       sync.Mutex
	reg      *RunRegistry
	startErr error // a start that failed for good: not retried by every job
	closed   bool
	owned    []owned // what this run did to local storage, undone by Undo

	routeMu  sync.Mutex // held while the route is probed
	route    *route     // how the local service reaches the registry
	routeErr error      // none does (for the run)
}

// owned is one image a pull named: ref, which this run gave it, and
// whether this run brought the image at all (fresh) or found it there.
type owned struct {
	id, ref string
	fresh   bool
	prev    string // the image ref named before, if another
}

// NewPuller prepares the pull-back into the local podman service.
func NewPuller(local *podman.Client, opts Options) *Puller {
	if opts.Mode == "" {
		opts.Mode = ModeAuto
	}
	if opts.ArchiveFormat == "" {
		opts.ArchiveFormat = DockerArchive
	}
	if opts.Compression == "" {
		opts.Compression = CompressionAuto
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.LocalName == "" {
		opts.LocalName = local.URI()
	}
	return &Puller{opts: opts, local: local}
}

// Request is one image to bring from a node into local storage.
type Request struct {
	Session *conn.Session
	Node    *podman.Client
	ID      string // image ID on the node
	Ref     string // the name it gets in local storage (NAME:TAG)
	// Platform is the image's platform.
	Platform platform.Platform
	// Format is the image's manifest type (the build's --format): OCI
	// when empty.
	Format string
	// Note shows the user a line about this image (how it travels, why
	// not through the registry).
	Note func(string)
	// Watch, when set, is given how to count the bytes from the node so
	// far, each time a transfer of the image starts (a progress view).
	Watch func(bytesIn func() int64)
}

// Result is what a pull-back did.
type Result struct {
	// Method is how the image came: "none" (local storage had it),
	// "registry" or "archive".
	Method string
	// Digest and Size are the image's in local storage.
	Digest string
	Size   int64
	// In and Out are the bytes put on the node's connection: in from the
	// node, out to it. What a registry transfer moved before it failed and
	// the archive followed counts too: those bytes crossed the link.
	In, Out int64
	// Layers and LayerBytes: what the manifest lists (compressed sizes),
	// most of which the registry usually had already. Registry only.
	Layers     int
	LayerBytes int64
}

// Pull brings req's image into local storage, named req.Ref, unless it is
// there already. Failures on this machine's side are marked fault.Local
// (another node would not help); the rest are the node's.
func (p *Puller) Pull(ctx context.Context, req Request) (Result, error) {
	if req.Note == nil {
		req.Note = func(string) {}
	}
	if req.Watch == nil {
		req.Watch = func(func() int64) {}
	}
	var res Result
	local := p.local.Bind(ctx)
	have, err := images.Exists(local, req.ID, nil)
	if err != nil {
		return res, fault.AsLocal(fmt.Errorf("local podman service: %w", err))
	}
	var transferName string
	if have {
		req.Note("local storage already has " + stringid.TruncateID(req.ID) + ": nothing to transfer")
		res.Method = "none"
	} else if transferName, err = p.bringBack(ctx, req, &res); err != nil {
		if fault.Is(err, fault.Local) {
			return res, fault.AsLocal(fmt.Errorf("local podman service %s: %w", p.opts.LocalName, err))
		}
		return res, err
	}
	ours, err := p.name(local, req, !have)
	if transferName != "" {
		// After the tag: the image is never nameless (an image prune
		// would take it), unless the tag failed; then it is this run's
		// to remove on undo.
		if err := dropName(local, req.ID, transferName); err != nil {
			p.opts.Log.Warn("dropping the transfer registry's name from a pulled image", "image", stringid.TruncateID(req.ID), "name", transferName, "error", err)
		}
	}
	p.remember(ours)
	if err != nil {
		return res, fault.AsLocal(fmt.Errorf("local podman service: tagging %s: %w", req.Ref, err))
	}
	inspect, err := images.GetImage(local, req.ID, nil)
	if err != nil {
		return res, fault.AsLocal(fmt.Errorf("local podman service: inspecting %s: %w", stringid.TruncateID(req.ID), err))
	}
	res.Digest, res.Size = inspect.Digest.String(), inspect.Size
	return res, nil
}

// name gives req's image its per-platform name req.Ref, under the name's
// lock (see namelock), and says what undo has to give back: fresh is
// whether this run brought the image.
func (p *Puller) name(local context.Context, req Request, fresh bool) (owned, error) {
	ours := owned{id: req.ID, ref: req.Ref, fresh: fresh}
	unlock, err := namelock.Lock(local, p.opts.LockDir, req.Ref)
	if err != nil {
		ours.ref = ""
		return ours, err
	}
	defer unlock()
	// The image the name is on now (a run of the same tag before this
	// one, whose list may hold it) gets it back on undo.
	if prev, err := images.GetImage(local, req.Ref, nil); err == nil && prev.ID != req.ID {
		ours.prev = prev.ID
	}
	// The name is this run's only if it did not name this image already
	// (an earlier run of the same tag left it): undo must not take it.
	if !fresh {
		if named, err := hasName(local, req.ID, req.Ref); err != nil || named {
			ours.ref = ""
		}
	}
	if err := Tag(local, req.ID, req.Ref); err != nil {
		ours.ref = ""
		return ours, err
	}
	return ours, nil
}

// bringBack moves the image: through the registry when the mode allows,
// else, or when that cannot work or fails in auto mode, as an archive.
func (p *Puller) bringBack(ctx context.Context, req Request, res *Result) (transferName string, err error) {
	if p.opts.Mode != ModeArchive {
		transferName, err := p.viaRegistry(ctx, req, res)
		if err == nil {
			res.Method = "registry"
			return transferName, nil
		}
		if ctx.Err() != nil || p.opts.Mode == ModeRegistry {
			return "", err
		}
		var un *unavailableError
		if errors.As(err, &un) {
			req.Note("transfer: archive, not registry: " + un.reason)
		} else {
			req.Note(fmt.Sprintf("registry transfer failed, falling back to an archive: %v", err))
		}
	}
	req.Note(fmt.Sprintf("pulling back %s as %s", stringid.TruncateID(req.ID), p.opts.ArchiveFormat))
	n, err := Archive(ctx, req.Node, p.local, req.ID, p.opts.ArchiveFormat, req.Watch)
	res.In += n
	if err != nil {
		return "", err
	}
	res.Method = "archive"
	return "", nil
}

func (p *Puller) remember(o owned) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.owned = append(p.owned, o)
}

// Undo takes back what this run did to local storage; it runs when the run
// is cancelled. A per-platform name this run gave goes back to the image
// it was on before (an earlier run's list may hold that one), or away; a
// name another run moved on meanwhile stays where it is. An image goes
// only when this run brought it and nothing else names it (see Release):
// an image another run found there, or named meanwhile, stays.
// It takes a context of its own: the run's is gone.
func (p *Puller) Undo() {
	p.mu.Lock()
	owned := p.owned
	p.owned = nil
	p.mu.Unlock()
	if len(owned) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, o := range owned {
		api := p.local.Bind(ctx)
		err := p.giveBackName(api, o)
		err = errors.Join(err, Release(api, o.id, "", o.fresh))
		if err != nil {
			p.opts.Log.Warn("taking back what this run put into local storage", "error", err)
		}
	}
}

// giveBackName moves o.ref from o's image back to o.prev, or removes it,
// under the name's lock, if the name is still on o's image.
func (p *Puller) giveBackName(api context.Context, o owned) error {
	if o.ref == "" {
		return nil
	}
	unlock, err := namelock.Lock(api, p.opts.LockDir, o.ref)
	if err != nil {
		return err
	}
	defer unlock()
	if ours, err := hasName(api, o.id, o.ref); err != nil || !ours {
		return err // moved on by another run: theirs now
	}
	if o.prev != "" {
		// Tagging moves the name: it is on one image at a time.
		if err := Tag(api, o.prev, o.ref); err == nil {
			return nil
		}
		// The earlier image is gone: nothing to give the name back to.
	}
	if err := untag(api, o.id, o.ref); err != nil {
		return fmt.Errorf("untagging %s from %s: %w", o.ref, stringid.TruncateID(o.id), err)
	}
	return nil
}

// viaRegistry: the node pushes the image through a forward on its own
// connection (layers the registry has are not sent), then the local podman
// pulls it by digest (layers local storage has are not read).
// It returns the name the pull gave the image (NAME@DIGEST in the
// transfer registry), for the caller to drop once the image has its own.
func (p *Puller) viaRegistry(ctx context.Context, job Request, res *Result) (string, error) {
	name := job.Session.Target.Name
	listen, err := nodeListener(job.Session)
	if err != nil {
		return "", err
	}
	// The forward first: a node that refuses it does not need the
	// registry started.
	ln, err := ListenStable(listen, name+"/"+job.Platform.String())
	if err != nil {
		if job.Session.Remote() {
			return "", unavailable("the SSH server of %s refuses port forwarding (AllowTcpForwarding in its sshd_config?): %v", name, err)
		}
		return "", unavailable("no port on 127.0.0.1 for %s: %v", name, err)
	}
	reg, err := p.registry(ctx)
	if err != nil {
		ln.Close()
		return "", fault.AsLocal(err)
	}
	// Before the node pushes: a local service that cannot pull from the
	// registry would waste the push.
	via, err := p.localRoute(ctx, reg)
	if err != nil {
		ln.Close()
		return "", fault.AsLocal(err)
	}
	fwd := ServeForward(ln, reg.Addr())
	job.Watch(func() int64 { in, _ := fwd.Bytes(); return in })
	defer func() {
		fwd.Close()
		res.In, res.Out = fwd.Bytes()
	}()

	// A repository of its own for every push (see RepoPrefix): no push
	// writes where another one may be writing or reading.
	repo := RepoFor(job.Platform)
	dest := fmt.Sprintf("127.0.0.1:%d/%s:%s", fwd.Port(), repo, PushTag)
	compression := Compression(p.opts.Compression, job.Format)
	job.Note(fmt.Sprintf("pulling back %s through the transfer registry (%s pushes to %s; %s layers)", stringid.TruncateID(job.ID), name, dest, compression))
	pushed, err := push(ctx, job.Node, job.ID, dest, compression)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return "", fmt.Errorf("pushing %s from %s to the transfer registry: %w", job.Platform, name, err)
	}
	man, err := reg.ManifestOf(ctx, repo)
	if err != nil {
		return "", fault.AsLocal(fmt.Errorf("reading what %s pushed to the transfer registry: %w", name, err))
	}
	if pushed != "" && pushed != man.Digest {
		return "", fmt.Errorf("%s pushed manifest %s, the transfer registry holds %s", name, pushed, man.Digest)
	}
	// The config is the image: its digest is the image ID. A push that
	// rewrote it (a format conversion) would give another image here.
	if strings.TrimPrefix(man.Config, "sha256:") != job.ID {
		return "", fmt.Errorf("the transfer changed the image: %s built %s, the transfer registry holds config %s", name, stringid.TruncateID(job.ID), man.Config)
	}
	res.Layers = len(man.Layers)
	for _, l := range man.Layers {
		res.LayerBytes += l.Size
	}

	return p.pullFromRegistry(ctx, job, via.addr+"/"+repo+"@"+man.Digest)
}

// pullFromRegistry has the local service pull ref, checks it is the image
// the node built, and returns ref, the name the pull gave it: the caller
// gives the image its own name, then drops ref, whose port means nothing
// after this run.
func (p *Puller) pullFromRegistry(ctx context.Context, job Request, ref string) (string, error) {
	name := job.Session.Target.Name
	ids, err := pull(ctx, p.local, ref, job.Platform.OS, job.Platform.Arch, job.Platform.Variant)
	if err != nil {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		return "", fault.AsLocal(fmt.Errorf("pulling %s from the transfer registry into local storage: %w", job.Platform, err))
	}
	if len(ids) != 1 || ids[0] != job.ID {
		return "", fault.AsLocal(fmt.Errorf("pulling %s from the transfer registry gave image %v, not %s built on %s", job.Platform, ids, stringid.TruncateID(job.ID), name))
	}
	return ref, nil
}

// registry returns the run's registry, starting it on first use.
func (p *Puller) registry(ctx context.Context) (*RunRegistry, error) {
	log := p.opts.Log
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, errors.New("the run is over: the transfer registry is stopped")
	case p.reg != nil:
		return p.reg, nil
	case p.startErr != nil:
		return nil, p.startErr
	}
	reg, err := StartRunRegistry(ctx, RunRegistryOptions{Dir: p.opts.CacheDir, MaxAge: p.opts.CacheMaxAge, Log: log})
	if err != nil {
		// A start cut short by a cancelled job may work for the next.
		if ctx.Err() == nil {
			p.startErr = err
		}
		return nil, err
	}
	log.Info("transfer registry started", "addr", reg.Addr(), "dir", reg.Dir)
	p.reg = reg
	return reg, nil
}

// Close stops the registry, if it was started, and waits for it to exit.
func (p *Puller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.routeMu.Lock()
	if r := p.route; r != nil && r.fwd != nil {
		r.fwd.Close()
		in, out := r.fwd.Bytes()
		p.opts.Log.Debug("transfer registry: the local podman service's forward", "bytes_to_local", out, "bytes_from_local", in)
	}
	p.route = nil
	p.routeMu.Unlock()
	if p.reg == nil {
		return nil
	}
	err := p.reg.Close()
	p.reg = nil
	return err
}

// nodeListener is how a node reaches the registry: a remote forward on its
// SSH connection (the node sees 127.0.0.1:PORT, nothing is opened to the
// network), or, for a unix:// node, which runs on this machine, a loopback
// listener here.
func nodeListener(s *conn.Session) (ListenFunc, error) {
	if c := s.SSH(); c != nil {
		return c.Listen, nil
	}
	if strings.HasPrefix(s.URI(), "unix:") {
		return net.Listen, nil
	}
	return nil, unavailable("%s is a tcp:// node: no SSH connection to carry a forward, and its 127.0.0.1 is not this machine", s.Target.Name)
}

// tagFor is a tag-safe form of the platform: linux-arm64-v8.
func tagFor(p platform.Platform) string {
	t := p.OS + "-" + p.Arch
	if p.Variant != "" {
		t += "-" + p.Variant
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, t)
}
