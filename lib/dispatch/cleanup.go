package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/containers/storage/pkg/stringid"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/transfer"
)

// Clean-up on the node. Each step gets a context of its own: it must run
// after the job's context was cancelled.

// stopRemote kills what is left of the job on the node (kill) or just
// removes its empty cgroups. A build it cannot stop is said on stderr and
// returned, for the error record.
func (r *Runner) stopRemote(s *conn.Session, jobID string, kind node.Kind, kill bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	killed, err := r.stop(ctx, s, jobID, kind, kill)
	var cannot *ErrCannotStop
	switch {
	case errors.As(err, &cannot):
		r.cfg.Log.Warn(cannot.Error(), "node", s.Target.Name, "job", jobID)
		return err
	case err != nil:
		r.cfg.Log.Warn("clean-up on node", "node", s.Target.Name, "error", err)
	case killed != "":
		r.cfg.Log.Debug("stopped the build on the node", "node", s.Target.Name, "job", jobID, "stop", kind.Stop, "pids", killed)
	}
	return nil
}

// removeOnNode takes the job's image off the node: its per-platform name
// ref, then the image when nothing else names it (transfer.Release). An
// older run's tag on the same image (a build from cache gives the same id)
// keeps it.
func (r *Runner) removeOnNode(s *conn.Session, id, ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := s.Connect(ctx)
	if err == nil {
		err = transfer.Release(client.Bind(ctx), id, ref, true)
	}
	if err != nil {
		r.cfg.Log.Warn("removing image on node", "node", s.Target.Name, "image", stringid.TruncateID(id), "error", err)
	}
}

// newJobID names a job of run: farm-RUNJOB, the run's id then 8 hex digits
// of the job's own (see lease.go), no dash (a dash nests systemd slices).
func newJobID(run string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return "farm-" + run + hex.EncodeToString(b)
}
