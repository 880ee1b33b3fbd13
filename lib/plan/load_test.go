package plan

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/farm-build/farm/lib/record"
)

// withLoads gives every node of farm a random load (some none at all, as
// from an older farm-nodes) and a random stop, from seed.
func withLoads(farm []record.Node, seed uint64) []record.Node {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := slices.Clone(farm)
	for i := range out {
		out[i].Stop = []string{"", record.StopCgroup, record.StopRuntime, record.StopNone}[rng.IntN(4)]
		if rng.IntN(4) == 0 {
			continue
		}
		out[i].Load = &record.Load{Builds: rng.IntN(3), Average: rng.Float64() * 8, StorageFree: int64(rng.IntN(64)) << 28}
	}
	return out
}

// TestPlanLoadPureFunction: with loads and stops, the plan is still a pure
// function of the records, whatever their order, and keeps every invariant.
func TestPlanLoadPureFunction(t *testing.T) {
	ps := benchPlatforms(t, 10)
	for seed := range uint64(6) {
		farm := withLoads(syntheticFarm(t, 30, ps, seed), seed)
		opts := Options{Platforms: ps, Affinity: fmt.Sprint("image-", seed)}
		want := encode(t, mustPlan(t, farm, opts))
		rng := rand.New(rand.NewPCG(seed, 5))
		for range 10 {
			shuffled := slices.Clone(farm)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			res := mustPlan(t, shuffled, opts)
			if got := encode(t, res); got != want {
				t.Fatalf("seed %d: the plan changed with the order of the node records", seed)
			}
			checkInvariants(t, shuffled, opts, res)
		}
	}
}

// TestPlanUnloadedIsUnchanged: a load that says nothing is running (no
// build, a low load average, ample storage) and a stop that works plan
// exactly as records without them, so plans stay sticky on an idle farm.
func TestPlanUnloadedIsUnchanged(t *testing.T) {
	ps := benchPlatforms(t, 10)
	for seed := range uint64(6) {
		farm := syntheticFarm(t, 30, ps, seed)
		opts := Options{Platforms: ps, Affinity: fmt.Sprint("image-", seed)}
		before := where(mustPlan(t, farm, opts))
		quiet := slices.Clone(farm)
		for i := range quiet {
			quiet[i].Stop = record.StopCgroup
			quiet[i].Load = &record.Load{Average: 0.1, StorageFree: 100 << 30}
		}
		if after := where(mustPlan(t, quiet, opts)); !maps.Equal(after, before) {
			t.Errorf("seed %d: idle loads moved %v to %v", seed, before, after)
		}
	}
}

// TestPlanSpreadsConcurrentRuns: a second run that sees the first run's
// builds running (farm-nodes reports them) puts its jobs on other nodes
// while the farm has idle ones, for any affinity: two images, or the same
// image twice.
func TestPlanSpreadsConcurrentRuns(t *testing.T) {
	var farm []record.Node
	for i := range 6 {
		farm = append(farm, mk(fmt.Sprintf("n%d", i), 4, "amd64", "arm64"))
	}
	for k := range 40 {
		opts := Options{Platforms: plats(t, "amd64,arm64"), Affinity: fmt.Sprint("image-", k%3)}
		first := mustPlan(t, farm, opts)
		seen := slices.Clone(farm)
		used := perNode(first)
		for i := range seen {
			seen[i].Load = &record.Load{Builds: used[seen[i].Name], StorageFree: 100 << 30}
		}
		second := mustPlan(t, seen, Options{Platforms: opts.Platforms, Affinity: fmt.Sprint("image-", k%5)})
		for name := range perNode(second) {
			if used[name] > 0 {
				t.Errorf("key %d: the second run put a job on %s, which runs the first's, while %d nodes are idle",
					k, name, len(farm)-len(used))
			}
		}
	}
}

// TestPlanBusyNodeGainsNothing: builds of another run on a node never move
// a job of this plan to it.
func TestPlanBusyNodeGainsNothing(t *testing.T) {
	ps := benchPlatforms(t, 8)
	for seed := range uint64(8) {
		farm := syntheticFarm(t, 20, ps, seed)
		opts := Options{Platforms: ps, Affinity: fmt.Sprint("image-", seed)}
		before := perNode(mustPlan(t, farm, opts))
		for i := range farm {
			busy := slices.Clone(farm)
			busy[i].Load = &record.Load{Builds: 1 + int(seed)%3, StorageFree: 100 << 30}
			if after := perNode(mustPlan(t, busy, opts)); after[farm[i].Name] > before[farm[i].Name] {
				t.Errorf("seed %d: %s got %d jobs with a build running there, %d without",
					seed, farm[i].Name, after[farm[i].Name], before[farm[i].Name])
			}
		}
	}
}

// TestPlanPrefersStoppableAndRoomy: among equal idle nodes, one whose
// builds cannot be stopped (stop none) or that is short of storage takes a
// job only when the others have one.
func TestPlanPrefersStoppableAndRoomy(t *testing.T) {
	for k := range 30 {
		farm := []record.Node{
			mk("a", 4, "amd64", ""), mk("b", 4, "amd64", ""), mk("tcp", 4, "amd64", ""), mk("full", 4, "amd64", ""),
		}
		farm[2].Stop = record.StopNone
		farm[3].Load = &record.Load{StorageFree: 100 << 20}
		opts := Options{Platforms: plats(t, "amd64"), Affinity: fmt.Sprint("image-", k)}
		if got := where(mustPlan(t, farm, opts))["linux/amd64"]; got != "a" && got != "b" {
			t.Errorf("key %d: amd64 on %s while a and b are idle, can stop builds and have room", k, got)
		}
		res := mustPlan(t, farm[2:], opts)
		if got := where(res)["linux/amd64"]; got != "tcp" {
			t.Errorf("key %d: amd64 on %s; a node short of storage goes after one that cannot stop builds", k, got)
		}
	}
}
