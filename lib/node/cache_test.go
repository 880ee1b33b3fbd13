package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/record"
)

// A probe soon after another asks no podman info: it uses what the first
// was told, with the load and free space read afresh through the shell. A
// stale entry (past the TTL, another podman version, a storage path that
// is gone) or a cache turned off means asking again.
func TestProbeReusesInfo(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ttl    time.Duration
		change func(e *cachedInfo)
		asks   int // GET /info of the second probe
	}{
		{"fresh", time.Minute, nil, 0},
		{"off", 0, nil, 1},
		{"past the TTL", time.Minute, func(e *cachedInfo) { e.Read = e.Read.Add(-2 * time.Minute) }, 1},
		{"read in the future", time.Minute, func(e *cachedInfo) { e.Read = e.Read.Add(time.Hour) }, 1},
		{"another podman", time.Minute, func(e *cachedInfo) { e.Info.Version.Version = "4.2.0" }, 1},
		{"storage gone", time.Minute, func(e *cachedInfo) { e.Info.Store.GraphRoot = "/nonexistent/storage" }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := podmantest.New(t)
			graphRoot := t.TempDir()
			fake.Info["host"] = map[string]any{"os": "linux", "arch": "amd64", "cpus": 3, "memTotal": 1 << 30, "cgroupManager": "systemd",
				"emulatedArchitectures": []string{"linux/s390x"}}
			fake.Info["store"] = map[string]any{"graphRoot": graphRoot, "graphRootAllocated": 1 << 40, "graphRootUsed": 1 << 39}
			cache := InfoCache{Dir: t.TempDir(), TTL: tc.ttl}
			targets := []conn.Target{{Name: "n", URI: fake.URI}}
			first := Probe(context.Background(), targets, Options{Cache: cache})[0]
			if first.Error != "" || fake.Count("GET /info") != 1 {
				t.Fatalf("first probe: %+v, %d info calls", first, fake.Count("GET /info"))
			}
			if tc.change != nil {
				p, _ := cache.path(fake.URI)
				var e cachedInfo
				b, err := os.ReadFile(p)
				if err != nil || json.Unmarshal(b, &e) != nil {
					t.Fatalf("no cache entry: %v", err)
				}
				tc.change(&e)
				b, _ = json.Marshal(e)
				os.WriteFile(p, b, 0o600)
			}
			second := Probe(context.Background(), targets, Options{Cache: cache})[0]
			if got := fake.Count("GET /info") - 1; got != tc.asks {
				t.Errorf("second probe asked podman info %d times, want %d", got, tc.asks)
			}
			if second.Error != "" || second.Load == nil {
				t.Fatalf("second probe: %+v", second)
			}
			if tc.asks == 0 {
				// Free space as podman's info counts it, of the very
				// filesystem, not the fake's numbers.
				if f := statFree(t, graphRoot); absDiff(second.Load.StorageFree, f) > 64<<20 {
					t.Errorf("storage free %d, the filesystem says %d", second.Load.StorageFree, f)
				}
				// Emulation is read live (here: this machine's binfmt_misc),
				// never the cached answer.
				if strings.Contains(strings.Join(second.Emulated, ","), "s390x") && !hostEmulates(t, "s390x") {
					t.Errorf("emulated %v: the cached answer, not binfmt_misc", second.Emulated)
				}
			}
			if !reflect.DeepEqual(static(first), static(second)) {
				t.Errorf("the records differ:\n%+v\n%+v", first, second)
			}
		})
	}
}

// static is a node record without what is read live.
func static(r record.Node) record.Node {
	r.Load, r.Emulated = nil, nil
	return r
}

func statFree(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("stat", "-f", "-c", "%f %s", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	var blocks, size int64
	if _, err := fmt.Sscan(string(out), &blocks, &size); err != nil {
		t.Fatal(err)
	}
	return blocks * size
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

func hostEmulates(t *testing.T, arch string) bool {
	t.Helper()
	matches, _ := filepath.Glob("/proc/sys/fs/binfmt_misc/*" + arch + "*")
	return len(matches) > 0
}

// Entries of URIs that are never probed again (a run's private service)
// go once they are a day past use; fresh ones stay.
func TestInfoCachePrunes(t *testing.T) {
	cache := InfoCache{Dir: t.TempDir(), TTL: time.Minute}
	info := &Info{}
	info.Store.GraphRoot, info.Version.Version = "/var/lib/containers/storage", "4.3.1"
	now := time.Now()
	cache.store("unix:///tmp/farm-local-1/podman.sock", info, now)
	old, _ := cache.path("unix:///tmp/farm-local-1/podman.sock")
	os.Chtimes(old, now.Add(-25*time.Hour), now.Add(-25*time.Hour))
	cache.store("ssh://root@lab-1/run/podman/podman.sock", info, now)
	if _, err := os.Stat(old); err == nil {
		t.Error("an entry a day past use is kept")
	}
	if _, ok := cache.load("ssh://root@lab-1/run/podman/podman.sock", now); !ok {
		t.Error("the fresh entry is gone")
	}
}
