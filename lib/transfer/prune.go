package transfer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	if removed == 0 {
		return nil
	}
	if err := collectGarbage(ctx, dir); err != nil {
		return fmt.Errorf("garbage-collecting the transfer registry cache %s: %w", dir, err)
	}
	log.Info("pruned the transfer registry cache", "dir", dir, "repositories", removed, "older than", maxAge)
	return nil
}
