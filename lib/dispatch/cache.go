package dispatch

import (
	"context"
	"regexp"
	"strings"
	"sync"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/transfer"
)

// cacheUse is one build's use of the farm-wide layer cache (Spec.FarmCache):
// the way to it from the node, and the entries the build pulled. A nil
// cacheUse is a build with the node's own cache only.
type cacheUse struct {
	repo string // as the node names it: 127.0.0.1:PORT/farm-cache/os-arch
	fwd  *transfer.Forward

	mu     sync.Mutex
	pulled []string // REPO:KEY, as the build log named them
}

// cachePulled is buildah's line for a step pulled from --cache-from.
var cachePulled = regexp.MustCompile(`^--> Cache pulled from remote (\S+)$`)

// farmCache opens the way from the job's node to the farm-wide layer cache
// for one build. A node that cannot reach the cache builds with its own
// only, saying why: the cache saves time, it is never why a build fails.
func (r *Runner) farmCache(ctx context.Context, on onNode, plat platform.Platform) *cacheUse {
	if !r.cfg.Spec.FarmCache || r.cfg.PullBack == nil {
		return nil
	}
	repo, fwd, err := r.cfg.PullBack.CacheForward(ctx, on.session, plat)
	if err != nil {
		on.view.Log("layer cache: this node's own only, not the farm's: " + err.Error())
		return nil
	}
	on.view.Log("layer cache: the farm's, " + repo + " (the transfer registry, through " + on.session.Target.Name + "'s connection)")
	return &cacheUse{repo: repo, fwd: fwd}
}

// name is the cache repository for the build request; empty: none.
func (c *cacheUse) name() string {
	if c == nil {
		return ""
	}
	return c.repo
}

// watch passes the build's log lines on to next, noting the cache entries
// the build pulls.
func (c *cacheUse) watch(next func(string)) func(string) {
	if c == nil {
		return next
	}
	return func(line string) {
		if m := cachePulled.FindStringSubmatch(line); m != nil && strings.HasPrefix(m[1], c.repo+":") {
			c.mu.Lock()
			c.pulled = append(c.pulled, m[1])
			c.mu.Unlock()
		}
		next(line)
	}
}

// close ends the build's use of the cache: it closes the way and returns
// the bytes it carried (in: node to here, out: here to node). The entries
// the build pulled lose the names the pull gave them on the node
// (127.0.0.1:PORT/farm-cache/os-arch:KEY): the images stay, the node's own
// layer cache, unnamed like the steps it builds itself, and the node's
// image list does not fill with the farm's cache keys.
func (c *cacheUse) close(ctx context.Context, r *Runner, on onNode) (int64, int64) {
	if c == nil {
		return 0, 0
	}
	c.fwd.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ref := range c.pulled {
		i := strings.LastIndex(ref, ":")
		if err := images.Untag(on.client.Bind(ctx), ref, ref[i+1:], ref[:i], nil); err != nil {
			r.cfg.Log.Debug("removing a layer cache entry's name on a node", "node", on.session.Target.Name, "name", ref, "error", err)
		}
	}
	return c.fwd.Bytes()
}
