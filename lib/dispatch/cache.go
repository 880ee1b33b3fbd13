package dispatch

import (
	"context"

	"github.com/farm-build/farm/lib/platform"
)

// farmCache opens the way from the job's node to the farm-wide layer cache
// for one build (Spec.FarmCache) and returns the cache repository as the
// node names it, and what closes the way, giving the bytes it carried
// (in: node to here, out: here to node). A node that cannot reach the cache
// builds with its own only, saying why: the cache saves time, it is never
// why a build fails.
func (r *Runner) farmCache(ctx context.Context, on onNode, plat platform.Platform) (string, func() (int64, int64)) {
	none := func() (int64, int64) { return 0, 0 }
	if !r.cfg.Spec.FarmCache || r.cfg.PullBack == nil {
		return "", none
	}
	repo, fwd, err := r.cfg.PullBack.CacheForward(ctx, on.session, plat)
	if err != nil {
		on.view.Log("layer cache: this node's own only, not the farm's: " + err.Error())
		return "", none
	}
	on.view.Log("layer cache: the farm's, " + repo + " (the transfer registry, through " + on.session.Target.Name + "'s connection)")
	return repo, func() (int64, int64) {
		fwd.Close()
		return fwd.Bytes()
	}
}
