package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/storage/pkg/stringid"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/platform"
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

// Unavailable says why the registry transfer cannot be used for a node or
// on this machine at all (as opposed to a transfer that failed): in auto
// mode the caller falls back to an archive and tells the user why.
type Unavailable struct{ Reason string }

func (u *Unavailable) Error() string { return "registry transfer unavailable: " + u.Reason }

// Hub is a run's transfer registry: started on the first transfer that
// needs it, shared by every job, stopped by Close. The zero Hub is ready:
// docker-registry from PATH, blobs in DefaultCacheDir.
type Hub struct {
	// Dir overrides DefaultCacheDir.
	Dir string
	// CacheMaxAge overrides DefaultCacheMaxAge.
	CacheMaxAge time.Duration

	mu       sync.Mutex
	reg      *Registry
	startErr error // a start that failed for good: not retried by every job
	closed   bool
}

// Job is one image to bring from a node into local storage.
type Job struct {
	// Mode is ModeAuto, ModeArchive or ModeRegistry.
	Mode     string
	Session  *conn.Session
	Node     context.Context // pkg/bindings context for the node's podman
	Local    context.Context // pkg/bindings context for the local podman
	ID       string          // image ID on the node
	Ref      string          // the name it gets in local storage (NAME:TAG)
	Platform platform.Platform
	Log      *slog.Logger
	// Note shows the user a line about this job (why not the registry).
	Note func(string)
}

// Result is what a registry transfer moved.
type Result struct {
	// Digest is the manifest digest as pushed (and pulled).
	Digest string
	// In and Out are the bytes the registry traffic put on the node's
	// connection: in from the node, out to it. Set even when the transfer
	// failed part way: those bytes crossed too.
	In, Out int64
	// Layers and LayerBytes: what the manifest lists (compressed sizes),
	// most of which the registry usually had already.
	Layers     int
	LayerBytes int64
}

// ErrUseArchive means: move this image as an archive instead. In auto mode
// the reason was shown through Job.Note.
var ErrUseArchive = errors.New("use an image archive")

// Pull brings job's image into local storage through the transfer registry
// when job.Mode allows, or returns ErrUseArchive. In auto mode a node or a
// machine where the registry cannot work (no docker-registry, no SSH
// forwarding, a tcp:// node) and a registry transfer that fails are noted
// and answered with ErrUseArchive; in registry mode they are errors, and
// those of this machine's side are *LocalError (another node would not
// help).
func (h *Hub) Pull(ctx context.Context, job Job) (Result, error) {
	if job.Mode == ModeArchive {
		return Result{}, ErrUseArchive
	}
	if job.Log == nil {
		job.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if job.Note == nil {
		job.Note = func(string) {}
	}
	res, err := h.viaRegistry(ctx, job)
	if err == nil || ctx.Err() != nil || job.Mode == ModeRegistry {
		return res, err
	}
	var un *Unavailable
	if errors.As(err, &un) {
		job.Note("transfer: archive, not registry: " + un.Reason)
	} else {
		job.Note(fmt.Sprintf("registry transfer failed, falling back to an archive: %v", err))
	}
	return res, ErrUseArchive
}

// viaRegistry: the node pushes the image through a forward on its own
// connection (layers the registry has are not sent), then the local podman
// pulls it by digest (layers local storage has are not read).
func (h *Hub) viaRegistry(ctx context.Context, job Job) (res Result, err error) {
	name := job.Session.Target.Name
	listen, err := nodeListener(job.Session)
	if err != nil {
		return res, err
	}
	if err := localOnThisMachine(job.Local); err != nil {
		return res, &LocalError{Err: err}
	}
	// The forward first: a node that refuses it does not need the
	// registry started.
	ln, err := ListenStable(listen, name+"/"+job.Platform.String())
	if err != nil {
		if job.Session.Remote() {
			return res, &Unavailable{Reason: fmt.Sprintf("the SSH server of %s refuses port forwarding (AllowTcpForwarding in its sshd_config?): %v", name, err)}
		}
		return res, &Unavailable{Reason: fmt.Sprintf("no port on 127.0.0.1 for %s: %v", name, err)}
	}
	reg, err := h.registry(ctx, job.Log)
	if err != nil {
		ln.Close()
		return res, &LocalError{Err: err}
	}
	fwd := ServeForward(ln, reg.Addr())
	defer func() {
		fwd.Close()
		res.In, res.Out = fwd.Bytes()
	}()

	// A repository of its own for every push (see RepoPrefix): no push
	// writes where another one may be writing or reading.
	repo := RepoFor(job.Platform)
	dest := fmt.Sprintf("127.0.0.1:%d/%s:%s", fwd.Port(), repo, PushTag)
	job.Note(fmt.Sprintf("pulling back %s through the transfer registry (%s pushes to %s)", stringid.TruncateID(job.ID), name, dest))
	pushed, err := push(job.Node, job.ID, dest)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return res, fmt.Errorf("pushing %s from %s to the transfer registry: %w", job.Platform, name, err)
	}
	man, err := reg.ManifestOf(ctx, repo)
	if err != nil {
		return res, &LocalError{Err: fmt.Errorf("reading what %s pushed to the transfer registry: %w", name, err)}
	}
	if pushed != "" && pushed != man.Digest {
		return res, fmt.Errorf("%s pushed manifest %s, the transfer registry holds %s", name, pushed, man.Digest)
	}
	// The config is the image: its digest is the image ID. A push that
	// rewrote it (a format conversion) would give another image here.
	if strings.TrimPrefix(man.Config, "sha256:") != job.ID {
		return res, fmt.Errorf("the transfer changed the image: %s built %s, the transfer registry holds config %s", name, stringid.TruncateID(job.ID), man.Config)
	}
	res.Digest, res.Layers = man.Digest, len(man.Layers)
	for _, l := range man.Layers {
		res.LayerBytes += l.Size
	}

	ref := reg.Addr() + "/" + repo + "@" + man.Digest
	ids, err := pull(job.Local, ref, job.Platform.OS, job.Platform.Arch, job.Platform.Variant)
	if err != nil {
		if ctx.Err() != nil {
			return res, context.Cause(ctx)
		}
		return res, &LocalError{Err: fmt.Errorf("pulling %s from the transfer registry into local storage: %w", job.Platform, err)}
	}
	if len(ids) != 1 || ids[0] != job.ID {
		return res, &LocalError{Err: fmt.Errorf("pulling %s from the transfer registry gave image %v, not %s built on %s", job.Platform, ids, stringid.TruncateID(job.ID), name)}
	}
	// The pull named the image after the transfer registry, whose port
	// means nothing after this run. Name it job.Ref first, so that the
	// image never goes nameless (an image prune would take it), then drop
	// the transfer name.
	if err := tag(job.Local, job.ID, job.Ref); err != nil {
		return res, &LocalError{Err: fmt.Errorf("tagging %s as %s: %w", stringid.TruncateID(job.ID), job.Ref, err)}
	}
	if err := dropName(job.Local, job.ID, ref); err != nil {
		job.Log.Warn("dropping the transfer registry's name from a pulled image", "image", stringid.TruncateID(job.ID), "name", ref, "error", err)
	}
	return res, nil
}

// registry returns the run's registry, starting it on first use.
func (h *Hub) registry(ctx context.Context, log *slog.Logger) (*Registry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, errors.New("the run is over: the transfer registry is stopped")
	case h.reg != nil:
		return h.reg, nil
	case h.startErr != nil:
		return nil, h.startErr
	}
	bin, err := FindRegistryBinary()
	if err != nil {
		h.startErr = &Unavailable{Reason: err.Error()}
		return nil, h.startErr
	}
	reg, err := StartRegistry(ctx, RegistryOptions{Binary: bin, Dir: h.Dir, MaxAge: h.CacheMaxAge, Log: log})
	if err != nil {
		// A start cut short by a cancelled job may work for the next.
		if ctx.Err() == nil {
			h.startErr = err
		}
		return nil, err
	}
	log.Info("transfer registry started", "addr", reg.Addr(), "pid", reg.Pid(), "dir", reg.Dir)
	h.reg = reg
	return reg, nil
}

// Close stops the registry, if it was started, and waits for it to exit.
func (h *Hub) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.reg == nil {
		return nil
	}
	err := h.reg.Close()
	h.reg = nil
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
	return nil, &Unavailable{Reason: fmt.Sprintf("%s is a tcp:// node: no SSH connection to carry a forward, and its 127.0.0.1 is not this machine", s.Target.Name)}
}

// localOnThisMachine checks that the local podman service can reach
// 127.0.0.1 of this machine: not a CONTAINER_HOST on another host.
func localOnThisMachine(local context.Context) error {
	c, err := bindings.GetClient(local)
	if err != nil {
		return err
	}
	if c.URI.Scheme != "unix" {
		return &Unavailable{Reason: fmt.Sprintf("the local podman service (%s://%s) is not on this machine", c.URI.Scheme, c.URI.Host)}
	}
	return nil
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
