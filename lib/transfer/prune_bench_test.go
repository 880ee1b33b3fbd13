package transfer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkPruneCache prunes copies of a real transfer registry cache, as
// StartRunRegistry does before it serves. bench/b7/ab makes the cache (about
// 50 pushes, most of them aged past DefaultCacheMaxAge), names it in
// FARM_BENCH_PRUNE_CACHE and times docker-registry garbage-collect, which
// this replaced, on the same copies.
func BenchmarkPruneCache(b *testing.B) {
	src := os.Getenv("FARM_BENCH_PRUNE_CACHE")
	if src == "" {
		b.Skip("FARM_BENCH_PRUNE_CACHE names no cache; bench/b7/ab makes one")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "cache")
		// cp -a keeps the repositories' times, which decide what is pruned.
		if out, err := exec.Command("cp", "-a", src, dir).CombinedOutput(); err != nil {
			b.Fatalf("copying %s: %v: %s", src, err, out)
		}
		b.StartTimer()
		if err := pruneCache(context.Background(), dir, DefaultCacheMaxAge, log); err != nil {
			b.Fatal(err)
		}
	}
}
