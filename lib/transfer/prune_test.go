package transfer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeCache lays out a registry storage directory: one blob no manifest
// uses, an old push and a recent one.
func fakeCache(t *testing.T) (dir, blob, oldRepo, newRepo string) {
	t.Helper()
	dir = t.TempDir()
	v2 := filepath.Join(dir, "docker", "registry", "v2")
	hex := "ab" + strings.Repeat("0", 62)
	blob = filepath.Join(v2, "blobs", "sha256", "ab", hex, "data")
	oldRepo = filepath.Join(v2, "repositories", RepoPrefix, "linux-amd64-old")
	newRepo = filepath.Join(v2, "repositories", RepoPrefix, "linux-amd64-new")
	for _, d := range []string{filepath.Dir(blob), oldRepo, newRepo} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(blob, []byte("layer"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-30 * 24 * time.Hour)
	if err := os.Chtimes(oldRepo, long, long); err != nil {
		t.Fatal(err)
	}
	return dir, blob, oldRepo, newRepo
}

func TestPruneCacheRemovesOldPushesAndTheirLayers(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Nothing old: nothing is touched, not even an unused blob.
	dir, blob, oldRepo, newRepo := fakeCache(t)
	if err := pruneCache(ctx, dir, 365*24*time.Hour, log); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{blob, oldRepo, newRepo} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed though nothing was old enough", p)
		}
	}

	// A week: the month-old push goes, its unused layer is collected, the
	// recent push stays.
	if err := pruneCache(ctx, dir, 7*24*time.Hour, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldRepo); !os.IsNotExist(err) {
		t.Errorf("the old push is still there: %v", err)
	}
	if _, err := os.Stat(newRepo); err != nil {
		t.Errorf("the recent push was removed: %v", err)
	}
	if _, err := os.Stat(blob); !os.IsNotExist(err) {
		t.Errorf("the layer no push uses was not collected: %v", err)
	}
}

// While a registry serves the cache (shared lock), another run must not
// prune it; once it is gone, the next run may.
func TestCacheLockKeepsPruningAwayFromAServingRegistry(t *testing.T) {
	dir := t.TempDir()
	serving, exclusive, err := lockCache(dir)
	if err != nil || !exclusive {
		t.Fatalf("first lock: exclusive %v, %v", exclusive, err)
	}
	if err := serving.share(); err != nil {
		t.Fatal(err)
	}
	second, exclusive, err := lockCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if exclusive {
		t.Fatal("got the exclusive lock while another registry serves")
	}
	second.release()
	serving.release()
	third, exclusive, err := lockCache(dir)
	if err != nil || !exclusive {
		t.Fatalf("after the others: exclusive %v, %v", exclusive, err)
	}
	third.release()
}
