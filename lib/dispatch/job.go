package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/storage/pkg/stringid"
	"github.com/docker/go-units"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/progress"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/registry"
	"github.com/farm-build/farm/lib/transfer"
)

// The phases of one job on one node: connect, upload the context and
// build, then push the image to the user's registry or pull it back here.

// runOn runs the job on node n, showing it as one job in the progress view.
// The clock records each phase's times for the job's record.
func (r *Runner) runOn(ctx context.Context, job *record.Job, plat platform.Platform, n record.Node, clock *phaseClock) (*record.Image, error) {
	view := r.cfg.Progress.Job(plat.String(), n.Name)
	clock.enter(view, record.PhaseConnect, n.Name)
	img, err := r.buildOn(ctx, job, plat, n, onNode{where: fmt.Sprintf("%s on %s", plat, n.Name), view: view, clock: clock})
	if err == nil {
		err = r.writeIIDFile(img)
	}
	clock.stop(err)
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

// onNode is a job connected to its node.
type onNode struct {
	session *conn.Session
	client  *podman.Client
	where   string // "linux/arm64 on lab-2"
	view    progress.Job
	clock   *phaseClock
}

// enter begins the job's next phase on its node.
func (on onNode) enter(phase string) { on.clock.enter(on.view, phase, on.session.Target.Name) }

func (r *Runner) buildOn(ctx context.Context, job *record.Job, plat platform.Platform, n record.Node, on onNode) (*record.Image, error) {
	if r.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.cfg.Timeout, fmt.Errorf("job timed out after %s (--timeout)", r.cfg.Timeout))
		defer cancel()
	}
	on, kind, err := r.connect(ctx, n, on)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", on.where, err)
	}
	tag, err := PlatformTag(r.cfg.Tag, plat)
	if err != nil {
		return nil, err
	}
	cache := r.farmCache(ctx, on, plat)
	id, buildSeconds, err := r.build(ctx, on, plat, kind, cache)
	cacheIn, cacheOut := cache.close(ctx, r, on)
	if err != nil {
		return nil, err
	}
	if err := transfer.Tag(on.client.Bind(ctx), id, tag); err != nil {
		r.removeOnNode(on.session, id, "")
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("building %s: naming the image %s: %w", on.where, tag, err)
	}
	img := &record.Image{
		Platform: plat.String(), Node: n.Name, ID: id, Tag: r.cfg.Tag, Ref: tag,
		Emulated: !native(n, plat), BuildSeconds: round(buildSeconds),
		Transfer: "archive", BytesIn: cacheIn, BytesOut: r.cfg.ContextSize + cacheOut, Extra: job.Extra,
	}
	if r.cfg.Push != nil {
		on.enter(record.PhasePush)
		if err := r.push(ctx, on, img); err != nil {
			r.removeOnNode(on.session, id, tag)
			return nil, fmt.Errorf("pushing %s from %s: %w", plat, n.Name, err)
		}
	} else {
		on.enter(record.PhasePull)
		if err := r.pullBack(ctx, on, img); err != nil {
			if ctx.Err() != nil {
				r.removeOnNode(on.session, id, tag)
				err = context.Cause(ctx)
			}
			return nil, fmt.Errorf("pulling %s back from %s: %w", plat, n.Name, err)
		}
	}
	if r.cfg.Cleanup {
		r.removeOnNode(on.session, id, tag)
	}
	return img, nil
}

// connect opens (or reuses) the node's connection and learns how it runs
// builds (cgroup manager, rootless, how to stop one), from the node record
// or, when the record does not say, from the node.
func (r *Runner) connect(ctx context.Context, n record.Node, on onNode) (onNode, node.Kind, error) {
	s, err := r.sessions.get(ctx, n)
	if err != nil {
		return on, node.Kind{}, err
	}
	on.session = s
	if on.client, err = s.Connect(ctx); err != nil {
		return on, node.Kind{}, err
	}
	kind, ok := node.FromRecord(n)
	if !ok {
		info, err := node.ReadInfo(ctx, on.client)
		if err != nil {
			return on, node.Kind{}, err
		}
		kind = node.KindOf(info, s.HasShell())
	}
	return on, kind, r.claim(ctx, s, on.client, kind)
}

// build uploads the context and runs the build, in a cgroup of its own
// where the node allows it and marked with its job id (see cgroup.go),
// with the farm-wide layer cache when there is one;
// whatever happens, what is left of it on the node is stopped.
//
// The build names no image: buildah learns the id of the image it
// committed by looking up the image's name, so two runs building the same
// -t on one node at once can each be told the other's id. Unnamed, buildah
// looks the image up by a random name of its own; buildOn names it after.
func (r *Runner) build(ctx context.Context, on onNode, plat platform.Platform, kind node.Kind, cache *cacheUse) (string, float64, error) {
	jobID := newJobID(r.runID)
	r.cfg.Log.Debug("building", "platform", plat.String(), "node", on.session.Target.Name, "job", jobID, "run", r.runID)
	on.enter(record.PhaseUpload)
	start := time.Now()
	body, runMark := markContext(r.cfg.Context(), r.runID)
	req := request{
		spec: &r.cfg.Spec, platform: plat, marker: marker(jobID),
		cache: cache.name(), version: on.client.Version(), runMark: runMark,
		context: body, logLine: cache.watch(on.view.Log),
		onUploaded: func() { on.clock.advance(on.view, record.PhaseUpload, record.PhaseBuild) },
	}
	if kind.CgroupParentAllowed() {
		req.cgroup = cgroupParent(kind.CgroupManager, jobID)
	}
	id, err := send(ctx, on.client, req)
	seconds := time.Since(start).Seconds()
	if err != nil {
		// Whatever failed (the build, the connection, the node's podman
		// service, or we were cancelled), the build's processes may still
		// run on the node: kill them, over SSH, which may well still work.
		stopErr := r.stopRemote(on.session, jobID, kind, true)
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if stopErr != nil {
			err = fmt.Errorf("%w; %v", err, stopErr)
		}
		return "", seconds, fmt.Errorf("building %s: %w", on.where, err)
	}
	r.stopRemote(on.session, jobID, kind, false)
	return id, seconds, nil
}

// pullBack brings the image into local storage (transfer owns how).
func (r *Runner) pullBack(ctx context.Context, on onNode, img *record.Image) error {
	start := time.Now()
	res, err := r.cfg.PullBack.Pull(ctx, transfer.Request{
		Session: on.session, Node: on.client, ID: img.ID, Ref: img.Ref,
		Platform: platform.MustParse(img.Platform), Format: r.cfg.Spec.Options.OutputFormat,
		Note: on.view.Log, Watch: on.view.Watch,
	})
	img.BytesIn, img.BytesOut = img.BytesIn+res.In, img.BytesOut+res.Out
	if err != nil {
		return err
	}
	img.Transfer = res.Method
	img.Digest, img.Size = res.Digest, res.Size
	img.TransferSeconds = round(time.Since(start).Seconds())
	return nil
}

// push has the node push the image to the registry under its per-platform
// tag; the record then names it by digest, which is what the list in the
// registry will reference. A registry that fails is not the node's fault:
// every alternative would push to the same registry (after retries).
func (r *Runner) push(ctx context.Context, on onNode, img *record.Image) error {
	named, err := reference.ParseNormalizedNamed(img.Ref)
	if err != nil {
		return err
	}
	tagged, _ := named.(reference.NamedTagged)
	on.view.Log("pushing " + stringid.TruncateID(img.ID) + " to " + img.Ref)
	start := time.Now()
	d, err := registry.PushFromNode(ctx, on.client, img.ID, tagged, *r.cfg.Push)
	if err != nil {
		return err
	}
	img.Transfer = "push"
	img.Digest = d.String()
	img.Ref = reference.TrimNamed(named).String() + "@" + d.String()
	img.TransferSeconds = round(time.Since(start).Seconds())
	return nil
}

// native reports whether n runs plat natively (not under emulation).
func native(n record.Node, plat platform.Platform) bool {
	for _, x := range n.Native {
		if c, err := platform.Canonical(x); err == nil && c == plat.String() {
			return true
		}
	}
	return false
}

func round(s float64) float64 { return float64(int64(s*100+0.5)) / 100 }
