package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/storage/pkg/stringid"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
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

// removeOnNode removes the built image from the node.
func (r *Runner) removeOnNode(s *conn.Session, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := s.Connect(ctx)
	if err != nil {
		r.cfg.Log.Warn("removing image on node", "node", s.Target.Name, "image", stringid.TruncateID(id), "error", err)
		return
	}
	force := true
	if _, errs := images.Remove(client.Bind(ctx), []string{id}, &images.RemoveOptions{Force: &force}); len(errs) > 0 {
		r.cfg.Log.Warn("removing image on node", "node", s.Target.Name, "image", stringid.TruncateID(id), "error", errors.Join(errs...))
	}
}

// newJobID names a job's cgroups on the node.
func newJobID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return "farm-" + hex.EncodeToString(b)
}
