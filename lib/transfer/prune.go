package transfer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/farm-build/farm/lib/filelock"
)

// DefaultCacheMaxAge is how long a pushed image's repository stays in the
// transfer registry's cache. Every push gets a repository of its own
// (RepoFor), so without pruning the cache only grows; a week keeps the base
// layers of ongoing work, which is what makes rebuilds cheap.
const DefaultCacheMaxAge = 7 * 24 * time.Hour

// cacheLock is held shared by every registry serving from a cache
// directory, and exclusively while pruning it: garbage collection must
// never run under a registry that is storing a push.
type cacheLock struct{ f *os.File }

func lockCache(dir string) (*cacheLock, bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".farm-lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("transfer registry cache lock: %w", err)
	}
	exclusive := filelock.TryLock(f) == nil
	if !exclusive {
		// Another run's registry is serving: share the cache, prune later.
		if err := filelock.LockShared(f); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("transfer registry cache lock: %w", err)
		}
	}
	return &cacheLock{f}, exclusive, nil
}

// share turns the exclusive lock taken for pruning into a shared one.
func (l *cacheLock) share() error { return filelock.LockShared(l.f) }

func (l *cacheLock) release() {
	if l != nil {
		l.f.Close() // closing the file drops the lock
	}
}

// pruneCache removes the repositories older than maxAge, then collects the
// blobs no remaining manifest uses. It runs only under the exclusive cache
// lock, with no registry serving.
func pruneCache(ctx context.Context, dir string, maxAge time.Duration, log *slog.Logger) error {
	repos, _ := filepath.Glob(filepath.Join(dir, "docker", "registry", "v2", "repositories", RepoPrefix, "*"))
	removed := 0
	for _, r := range repos {
		if fi, err := os.Stat(r); err == nil && time.Since(fi.ModTime()) > maxAge {
			if err := os.RemoveAll(r); err != nil {
				return fmt.Errorf("pruning the transfer registry cache: %w", err)
			}
			removed++
		}
	}
	entries, err := pruneLayerCache(dir, maxAge)
	if err != nil {
		return fmt.Errorf("pruning the farm-wide layer cache: %w", err)
	}
	if removed == 0 && entries == 0 {
		return nil
	}
	if err := collectGarbage(ctx, dir); err != nil {
		return fmt.Errorf("garbage-collecting the transfer registry cache %s: %w", dir, err)
	}
	log.Info("pruned the transfer registry cache", "dir", dir, "repositories", removed, "layer cache entries", entries, "older than", maxAge)
	return nil
}

// pruneLayerCache removes the farm-wide layer cache's entries (see
// CacheRepoPrefix) first pushed more than maxAge ago: each is a tag, one
// build step's result under buildah's cache key, and the manifest revision
// it names unless a tag that stays names it too. Garbage collection then
// deletes the layers nothing else uses. A step built again after that is
// pushed again. It returns how many entries it removed.
func pruneLayerCache(dir string, maxAge time.Duration) (int, error) {
	repos, _ := filepath.Glob(filepath.Join(dir, "docker", "registry", "v2", "repositories", CacheRepoPrefix, "*", "_manifests"))
	removed := 0
	for _, m := range repos {
		tags, _ := os.ReadDir(filepath.Join(m, "tags"))
		kept := map[string]bool{} // manifests that a remaining tag names
		var gone []string
		for _, tag := range tags {
			tdir := filepath.Join(m, "tags", tag.Name())
			link, _ := os.ReadFile(filepath.Join(tdir, "current", "link"))
			if fi, err := os.Stat(tdir); err != nil || time.Since(fi.ModTime()) <= maxAge {
				kept[string(link)] = true
				continue
			}
			if err := os.RemoveAll(tdir); err != nil {
				return removed, err
			}
			removed++
			gone = append(gone, string(link))
		}
		for _, d := range gone {
			hex, ok := strings.CutPrefix(d, "sha256:")
			if !ok || kept[d] || strings.ContainsAny(hex, `/\.`) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(m, "revisions", "sha256", hex)); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}
