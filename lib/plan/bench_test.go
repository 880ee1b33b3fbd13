package plan

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/record"
)

// benchPlatforms returns n distinct canonical platforms, the common ones
// first.
func benchPlatforms(tb testing.TB, n int) []platform.Platform {
	tb.Helper()
	arches := []string{"amd64", "arm64", "arm/v7", "ppc64le", "s390x", "riscv64", "386", "arm/v6",
		"mips64le", "loong64", "ppc64", "mips", "mipsle", "mips64", "wasm"}
	var out []platform.Platform
	for _, os := range []string{"linux", "freebsd", "windows", "netbsd", "openbsd", "illumos"} {
		for _, arch := range arches {
			if len(out) == n {
				return out
			}
			p, err := platform.Parse(os + "/" + arch)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, p)
		}
	}
	tb.Fatalf("only %d platforms, want %d", len(out), n)
	return nil
}

// syntheticFarm is a large farm shaped like real ones: most nodes are amd64
// or arm64 (platform popularity falls off like 1/rank), some build a second
// platform natively (amd64 runs 386, arm64 runs arm/v7), every node emulates
// a few others with qemu, and about one in a hundred is unreachable.
func syntheticFarm(tb testing.TB, nodes int, plats []platform.Platform, seed uint64) []record.Node {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	weights := make([]float64, len(plats))
	total := 0.0
	for i := range weights {
		weights[i] = 1 / float64(i+1)
		total += weights[i]
	}
	pick := func() string {
		x := rng.Float64() * total
		for i, w := range weights {
			if x < w {
				return plats[i].String()
			}
			x -= w
		}
		return plats[len(plats)-1].String()
	}
	cpus := []int{2, 4, 8, 16, 32, 64}
	out := make([]record.Node, nodes)
	for i := range out {
		n := record.Node{
			Name:     fmt.Sprintf("node-%05d", i),
			URI:      fmt.Sprintf("ssh://farm@10.%d.%d.%d/run/podman/podman.sock", i>>16, (i>>8)&255, i&255),
			Identity: "/home/farm/.ssh/id_ed25519",
			Native:   []string{pick()},
			CPUs:     cpus[rng.IntN(len(cpus))],
			Memory:   int64(rng.IntN(256)+1) << 30,
			Podman:   "4.9.3",
		}
		if rng.IntN(10) < 3 {
			n.Native = append(n.Native, pick())
		}
		for range 2 + rng.IntN(5) {
			n.Emulated = append(n.Emulated, plats[rng.IntN(len(plats))].String())
		}
		if rng.IntN(100) == 0 {
			n.Error = "ssh: connect to host: connection refused"
		}
		out[i] = n
	}
	return out
}

func BenchmarkPlan10kNodes64Platforms(b *testing.B) {
	plats := benchPlatforms(b, 64)
	nodes := syntheticFarm(b, 10000, plats, 1)
	opts := Options{Platforms: plats, Affinity: "quay.io/farm/bench"}
	b.ReportAllocs()
	for b.Loop() {
		res, err := Plan(nodes, opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Jobs) != len(plats) {
			b.Fatalf("%d jobs, want %d", len(res.Jobs), len(plats))
		}
	}
}
