package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/fault"
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
	Cleanup bool
	SSH     conn.SSHOptions
	// Push, when set, makes each node push its image to the registry of
	// Tag instead of sending it back here (farm-build --push).
	Push *registry.Options
	// PullBack brings each image into local storage (unused with Push).
	// Its owner closes it after the runner.
	PullBack *transfer.Puller
	Log      *slog.Logger
	// Progress shows each job's build output and phase on stderr.
	Progress progress.View
	Stage    string
	// IIDFile, when set, receives each platform's image ID (see IIDFile).
	IIDFile string
	// Prepared is the run's context phase (record.PhaseContext), the first
	// of every job's phases; empty when the caller made no context.
	Prepared record.Phase
}

// Runner runs jobs as they arrive and reports each as an image or an error
// record.
type Runner struct {
	cfg      Config
	sessions *sessionPool
	sem      chan struct{}
	// stop kills what is left of a job on its node (stopJob; tests watch it).
	stop func(ctx context.Context, s *conn.Session, jobID string, kind node.Kind, kill bool) (string, error)

	// runID marks everything the run makes on nodes (see lease.go).
	runID  string
	leases leases
	// claims counts the jobs' build claims per connection (slot.go).
	claims claimCount
	// tmpDirs are where podman keeps temporary files on a node besides its
	// service's TMPDIR: its default, /var/tmp (tmpfiles.go).
	tmpDirs []string

	mu        sync.Mutex
	platforms map[string]bool

	// early are the connections Preconnect opens; Close stops and waits for them.
	early       sync.WaitGroup
	earlyCancel context.CancelFunc
}

// NewRunner prepares a run.
func NewRunner(cfg Config) *Runner {
	r := &Runner{cfg: cfg, sessions: newSessionPool(cfg.SSH, cfg.Log), stop: stopJob, platforms: map[string]bool{},
		runID: newRunID(), leases: leases{held: map[*conn.Session]*leaseEntry{}}, tmpDirs: []string{"/var/tmp"}}
	if cfg.Jobs > 0 {
		r.sem = make(chan struct{}, cfg.Jobs)
	}
	return r
}

// Preconnect opens the run's connections to targets and takes its lease
// there while the plan is still being made: in a pipeline farm-build starts
// with farm-nodes and farm-plan, and a second SSH handshake once the plan had
// arrived was most of what farm added to a build (bench P1). It asks the
// node's podman nothing more: what the job needs to know of the node (its
// kind, where its storage is) comes with the plan's node record, and each
// /info here would slow farm-nodes' own on the same service. A job for one
// of them finds its node ready; a target no job names costs one connection,
// closed with the rest. A failure here is only logged: the job connects
// again and reports its own error.
func (r *Runner) Preconnect(ctx context.Context, targets []conn.Target) {
	ctx, r.earlyCancel = context.WithCancel(ctx)
	for _, t := range targets {
		r.early.Add(1)
		go func() {
			defer r.early.Done()
			began := time.Now()
			if err := r.connectEarly(ctx, t); err != nil {
				r.cfg.Log.Debug("connecting early failed; a job there connects again", "node", t.Name, "error", err)
				return
			}
			r.cfg.Log.Debug("connected early", "node", t.Name, "took", time.Since(began).Round(time.Millisecond))
		}()
	}
}

// connectEarly is Preconnect's work for one target: the connection, a
// podman client on it (its first request opens the SSH tunnel's socket) and
// the run's lease.
func (r *Runner) connectEarly(ctx context.Context, t conn.Target) error {
	s, err := r.sessions.get(ctx, record.Node{Name: t.Name, URI: t.URI, Identity: t.Identity})
	if err != nil {
		return err
	}
	if _, err := s.Connect(ctx); err != nil {
		return err
	}
	return r.lease(ctx, s).err
}

// Close ends the run's leases and every node connection.
func (r *Runner) Close() {
	if r.earlyCancel != nil {
		r.earlyCancel() // a node that never answered must not hold up the end
	}
	r.early.Wait()
	r.releaseLeases()
	r.sessions.closeAll()
}

// Outcome is the record one job produced: an *record.Image or *record.Error.
type Outcome = record.Record

// Run builds one job and returns its outcome, failing over to the job's
// alternatives while the failure is the node's (fault.Node). It is safe to
// call from many goroutines at once.
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

	clock := r.newClock()
	// The job holds a build claim on the node it works on (slot.go).
	candidates, release := r.place(ctx, job, plat)
	defer func() { release() }()
	var lastErr error
	lastNode := candidates[0].Name
	for i, n := range candidates {
		if !n.Reachable() {
			continue
		}
		if i > 0 {
			r.cfg.Log.Warn("failing over", "platform", plat.String(), "from", lastNode, "to", n.Name, "reason", lastErr)
			release()
			release = r.claimOn(ctx, n)
		}
		img, err := r.runOn(ctx, job, plat, n, clock)
		if err == nil {
			img.Phases = clock.list()
			return img
		}
		lastErr, lastNode = err, n.Name
		if !fault.KindOf(ctx, err).FailOver() {
			break
		}
		// The node failed: the next job for it must reconnect rather than
		// reuse a connection to a service that may be gone.
		r.sessions.drop(n.Name)
	}
	if lastErr == nil {
		lastErr = errors.New("no reachable node in the job or its alternatives")
	}
	e := r.errorRecord(job, lastNode, lastErr)
	e.Phases = clock.list()
	return e
}

func (r *Runner) newClock() *phaseClock {
	if r.cfg.Prepared.Name == "" {
		return newPhaseClock()
	}
	return newPhaseClock(r.cfg.Prepared)
}

func (r *Runner) errorRecord(job *record.Job, nodeName string, err error) *record.Error {
	return &record.Error{Stage: r.cfg.Stage, Error: err.Error(), Platform: job.Platform, Node: nodeName}
}

// Undo removes from local storage what this run pulled back; it runs when
// the run is cancelled, so the local store is left as it was.
func (r *Runner) Undo() {
	if r.cfg.PullBack != nil {
		r.cfg.PullBack.Undo()
	}
}
