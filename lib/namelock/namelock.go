// Package namelock serialises, on this machine, the writers of one image
// name in local storage: farm-manifest writing a list and re-pointing its
// members' per-platform tags, farm-build naming an image it pulled back
// and giving a name back when its run is interrupted. Each reads what a
// name is on and then moves it; without the lock, two runs of one tag
// could each move a name on what the other had just read.
package namelock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/farm-build/farm/lib/filelock"
)

// DefaultDir is where the locks are when the caller names no directory:
// one per machine, so that every run's stages find the same files.
func DefaultDir() string { return filepath.Join(os.TempDir(), "farm-manifest-locks") }

// Lock waits for the lock of name in dir (DefaultDir when empty) until
// ctx ends, and returns how to release it. A lock is an flock on
// DIR/<first 8 bytes of sha256(name), hex>.lock: a holder that dies
// releases it.
func Lock(ctx context.Context, dir, name string) (unlock func(), err error) {
	if dir == "" {
		dir = DefaultDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	sum := sha256.Sum256([]byte(name))
	f, err := os.OpenFile(filepath.Join(dir, hex.EncodeToString(sum[:8])+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock for %s: %w", name, err)
	}
	for {
		err := filelock.TryLock(f)
		if err == nil {
			return func() { filelock.Unlock(f); f.Close() }, nil
		}
		if !errors.Is(err, filelock.ErrLocked) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
