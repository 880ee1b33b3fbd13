package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/record"
)

// mk builds a reachable node record; native and emulated are comma-separated
// platform lists in any spelling ("" for none).
func mk(name string, cpus int, native, emulated string) record.Node {
	split := func(s string) []string {
		if s == "" {
			return []string{}
		}
		return strings.Split(s, ",")
	}
	return record.Node{
		Name: name, URI: "ssh://farm@" + name + "/run/podman/podman.sock", Identity: "/k",
		Native: split(native), Emulated: split(emulated), CPUs: cpus,
	}
}

func down(name, why string) record.Node {
	n := mk(name, 0, "", "")
	n.Error = why
	return n
}

func plats(tb testing.TB, s string) []platform.Platform {
	tb.Helper()
	list, err := platform.ParseList(s)
	if err != nil {
		tb.Fatal(err)
	}
	return list
}

// where maps each planned platform to its node, "*" marking emulation.
func where(res *Result) map[string]string {
	m := map[string]string{}
	for _, j := range res.Jobs {
		m[j.Platform] = j.Node.Name
		if j.Emulated {
			m[j.Platform] += "*"
		}
	}
	return m
}

func mustPlan(tb testing.TB, nodes []record.Node, opts Options) *Result {
	tb.Helper()
	res, err := Plan(nodes, opts)
	if err != nil {
		tb.Fatalf("Plan: %v", err)
	}
	return res
}

// perNode counts the jobs on each node.
func perNode(res *Result) map[string]int {
	m := map[string]int{}
	for _, j := range res.Jobs {
		m[j.Node.Name]++
	}
	return m
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name  string
		nodes []record.Node
		opts  Options
		want  map[string]string // platform -> node ("*": emulated)
	}{
		{
			name:  "native beats emulated, whatever the scores",
			nodes: []record.Node{mk("a", 64, "amd64", "arm64"), mk("b", 1, "arm64", ""), mk("c", 64, "amd64", "arm64")},
			opts:  Options{Platforms: plats(t, "arm64")},
			want:  map[string]string{"linux/arm64": "b"},
		},
		{
			name: "native beats emulated even when the native node is busy",
			// 386 and arm64 have one native candidate each, so b takes
			// 386 first; arm64 still goes to busy b, not idle emulating a.
			nodes: []record.Node{mk("a", 8, "amd64", "arm64"), mk("b", 2, "386,arm64", "")},
			opts:  Options{Platforms: plats(t, "386,arm64"), Emulation: EmulationAuto},
			want:  map[string]string{"linux/386": "b", "linux/arm64": "b"},
		},
		{
			name:  "emulated only when no native node",
			nodes: []record.Node{mk("a", 4, "amd64", "arm64"), mk("b", 4, "amd64", "")},
			opts:  Options{Platforms: plats(t, "arm64")},
			want:  map[string]string{"linux/arm64": "a*"},
		},
		{
			name:  "two platforms on one node",
			nodes: []record.Node{mk("solo", 4, "amd64", "arm64")},
			opts:  Options{Platforms: plats(t, "amd64,arm64")},
			want:  map[string]string{"linux/amd64": "solo", "linux/arm64": "solo*"},
		},
		{
			name:  "unreachable nodes are skipped",
			nodes: []record.Node{down("arm", "connection refused"), mk("x86", 4, "amd64", "arm64")},
			opts:  Options{Platforms: plats(t, "arm64")},
			want:  map[string]string{"linux/arm64": "x86*"},
		},
		{
			name:  "default targets are the native platforms of reachable nodes",
			nodes: []record.Node{mk("a", 4, "amd64", "arm64,s390x"), mk("b", 4, "arm64/v8", ""), down("c", "timeout")},
			want:  map[string]string{"linux/amd64": "a", "linux/arm64": "b"},
		},
		{
			name: "node platforms are re-normalised",
			nodes: []record.Node{
				mk("a", 4, "x86_64", "aarch64,armhf"),
				mk("b", 4, "linux/arm64/v8", ""),
			},
			opts: Options{Platforms: plats(t, "amd64,linux/arm64,arm")},
			want: map[string]string{"linux/amd64": "a", "linux/arm64": "b", "linux/arm/v7": "a*"},
		},
		{
			name: "the most constrained platform is placed first",
			// arm64 can only go to a; amd64 placed first by name would take
			// a if it outscored b there.
			nodes: []record.Node{mk("a", 4, "amd64,arm64", ""), mk("b", 4, "amd64", "")},
			opts:  Options{Platforms: plats(t, "amd64,arm64")},
			want:  map[string]string{"linux/amd64": "b", "linux/arm64": "a"},
		},
		{
			name:  "a node without cpus counts as one CPU",
			nodes: []record.Node{mk("a", 0, "amd64,386,arm64", ""), mk("b", 3, "amd64,386,arm64", "")},
			opts:  Options{Platforms: plats(t, "amd64,386,arm64")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every rule must hold whatever the affinity key, not just for
			// the scores one key happens to give.
			for k := range 20 {
				opts := tt.opts
				opts.Affinity = fmt.Sprintf("image-%d", k)
				res := mustPlan(t, tt.nodes, opts)
				if tt.want != nil {
					if got := where(res); !maps.Equal(got, tt.want) {
						t.Fatalf("affinity %q: got %v, want %v", opts.Affinity, got, tt.want)
					}
				}
				checkInvariants(t, tt.nodes, opts, res)
			}
		})
	}
}

// checkInvariants checks what every plan must satisfy.
func checkInvariants(t *testing.T, nodes []record.Node, opts Options, res *Result) {
	t.Helper()
	for _, j := range res.Jobs {
		if slices.Contains(j.Node.Native, j.Platform) == j.Emulated {
			t.Errorf("%s on %s: emulated=%v but native=%v", j.Platform, j.Node.Name, j.Emulated, j.Node.Native)
		}
		for _, a := range j.Alternatives {
			if a.Name == j.Node.Name {
				t.Errorf("%s: chosen node %s is also an alternative", j.Platform, a.Name)
			}
			if !a.Reachable() {
				t.Errorf("%s: unreachable alternative %s", j.Platform, a.Name)
			}
		}
	}
	// No node gets a second job while a candidate of the same class has
	// none, at the time each platform is placed.
	opts.Explain = true
	explained := mustPlan(t, nodes, opts)
	if !maps.Equal(where(explained), where(res)) {
		t.Errorf("--explain changed the plan: %v, without: %v", where(explained), where(res))
	}
	for _, d := range explained.Decisions {
		if d.Candidates[0].Jobs == 0 {
			continue
		}
		for _, c := range d.Candidates[1:] {
			if c.Emulated == d.Emulated && c.Jobs == 0 {
				t.Errorf("%s: %s got a second job while %s, which could build it, had none", d.Platform, d.Node, c.Node)
			}
		}
	}
}

func TestPlanSpreadWeighsCPUs(t *testing.T) {
	all := "amd64,386,arm64,arm/v7,s390x,ppc64le,riscv64,loong64"
	tests := []struct {
		name    string
		nodes   []record.Node
		targets string
		want    map[string]int // jobs per node
	}{
		{
			name:    "every node gets a job before any gets a second, whatever its size",
			nodes:   []record.Node{mk("big", 64, all, ""), mk("small1", 2, all, ""), mk("small2", 2, all, "")},
			targets: "amd64,386,arm64",
			want:    map[string]int{"big": 1, "small1": 1, "small2": 1},
		},
		{
			name:    "then the lowest (jobs+1)/cpus: 8 CPUs take four jobs while 2 CPUs take one",
			nodes:   []record.Node{mk("big", 8, all, ""), mk("small", 2, all, "")},
			targets: "amd64,386,arm64,arm/v7,s390x",
			want:    map[string]int{"big": 4, "small": 1},
		},
		{
			name:    "equal nodes share equally",
			nodes:   []record.Node{mk("a", 4, all, ""), mk("b", 4, all, "")},
			targets: all,
			want:    map[string]int{"a": 4, "b": 4},
		},
		{
			name:    "emulating nodes share the same way",
			nodes:   []record.Node{mk("a", 6, "amd64", all), mk("b", 3, "amd64", all)},
			targets: "s390x,ppc64le,riscv64",
			want:    map[string]int{"a": 2, "b": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k := range 20 {
				opts := Options{Platforms: plats(t, tt.targets), Affinity: fmt.Sprint(k)}
				res := mustPlan(t, tt.nodes, opts)
				if got := perNode(res); !maps.Equal(got, tt.want) {
					t.Fatalf("affinity %q: jobs per node %v, want %v", opts.Affinity, got, tt.want)
				}
				checkInvariants(t, tt.nodes, opts, res)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	farm := []record.Node{mk("a", 4, "amd64", "arm64"), mk("b", 4, "arm64", ""), down("c", "connection refused")}
	considered := "a (native: linux/amd64; emulated: linux/arm64), b (native: linux/arm64; emulated: none); " +
		"skipped as unreachable: c (connection refused)"
	tests := []struct {
		name  string
		nodes []record.Node
		opts  Options
		want  string
		index int // of the bad record, for a *NodeError; -1 otherwise
	}{
		{
			name:  "no node records",
			want:  "no node records on stdin; farm-plan reads what farm-nodes writes: farm-nodes | farm-plan",
			index: -1,
		},
		{
			name:  "no reachable node",
			nodes: []record.Node{down("a", "connection refused"), down("b", "no route to host")},
			want:  "no reachable node: a (connection refused), b (no route to host)",
			index: -1,
		},
		{
			name:  "no node can build the platform",
			nodes: farm,
			opts:  Options{Platforms: plats(t, "riscv64")},
			want: "cannot place linux/riscv64: no reachable node builds it natively or by emulation\n" +
				"farm-plan: nodes considered: " + considered,
			index: -1,
		},
		{
			name:  "every platform that cannot be placed is named",
			nodes: farm,
			opts:  Options{Platforms: plats(t, "amd64,riscv64,s390x")},
			want: "cannot place linux/riscv64: no reachable node builds it natively or by emulation\n" +
				"farm-plan: cannot place linux/s390x: no reachable node builds it natively or by emulation\n" +
				"farm-plan: nodes considered: " + considered,
			index: -1,
		},
		{
			name:  "emulation never",
			nodes: []record.Node{mk("a", 4, "amd64", "arm64"), mk("b", 4, "amd64", "arm64")},
			opts:  Options{Platforms: plats(t, "amd64,arm64"), Emulation: EmulationNever},
			want: "cannot place linux/arm64: no reachable node builds it natively, and --emulation=never forbids emulating it on a, b\n" +
				"farm-plan: nodes considered: a (native: linux/amd64; emulated: linux/arm64), b (native: linux/amd64; emulated: linux/arm64)",
			index: -1,
		},
		{
			name:  "only unreachable nodes build the platform",
			nodes: []record.Node{mk("a", 4, "amd64", ""), func() record.Node { n := mk("b", 4, "arm64", ""); n.Error = "timeout"; return n }()},
			opts:  Options{Platforms: plats(t, "arm64")},
			want: "cannot place linux/arm64: no reachable node builds it natively or by emulation\n" +
				"farm-plan: nodes considered: a (native: linux/amd64; emulated: none); skipped as unreachable: b (timeout)",
			index: -1,
		},
		{
			name:  "no native platform to default to",
			nodes: []record.Node{mk("a", 4, "", "arm64")},
			want:  "no target platforms: no reachable node reports a native platform; name the targets with --platforms",
			index: -1,
		},
		{
			name:  "unknown platform in a node record",
			nodes: []record.Node{mk("a", 4, "amd64", ""), mk("b", 4, "amd64", "amd46")},
			want:  `node "b": emulated platform "amd46": unknown architecture "amd46"`,
			index: 1,
		},
		{
			name:  "node without a name",
			nodes: []record.Node{mk("a", 4, "amd64", ""), mk(" ", 4, "amd64", "")},
			want:  `node record without a "name"`,
			index: 1,
		},
		{
			name:  "two records for one node",
			nodes: []record.Node{mk("a", 4, "amd64", ""), mk("b", 4, "amd64", ""), mk("a", 4, "arm64", "")},
			want:  `node "a": a second record for this node; each node record must name a different node`,
			index: 2,
		},
		{
			name:  "bad emulation mode",
			nodes: farm,
			opts:  Options{Emulation: "sometimes"},
			want:  `emulation "sometimes": want auto or never`,
			index: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Plan(tt.nodes, tt.opts)
			if err == nil {
				t.Fatalf("no error; plan %v", where(res))
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			var ne *NodeError
			if errors.As(err, &ne) != (tt.index >= 0) || (tt.index >= 0 && ne.Index != tt.index) {
				t.Errorf("error %#v: want a *NodeError for record %d", err, tt.index)
			}
		})
	}
}

// TestPlanPureFunction: the plan depends on the nodes, not on the order
// their records arrive in (farm-nodes answers in whatever order the nodes
// do).
func TestPlanPureFunction(t *testing.T) {
	ps := benchPlatforms(t, 12)
	farm := syntheticFarm(t, 40, ps, 7)
	for _, opts := range []Options{
		{},
		{Platforms: ps, Affinity: "quay.io/me/app"},
		{Platforms: ps[:5], Emulation: EmulationNever},
	} {
		want := encode(t, mustPlan(t, farm, opts))
		rng := rand.New(rand.NewPCG(3, 4))
		for range 25 {
			shuffled := slices.Clone(farm)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			res := mustPlan(t, shuffled, opts)
			if got := encode(t, res); got != want {
				t.Fatalf("options %+v: the plan changed with the order of the node records:\n%s\nwant:\n%s", opts, got, want)
			}
			checkInvariants(t, shuffled, opts, res)
		}
	}
}

func encode(t *testing.T, res *Result) string {
	t.Helper()
	var b strings.Builder
	for _, j := range res.Jobs {
		line, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestPlanSticky: changing the farm moves only what it has to. "Unrelated"
// means a node that cannot build a platform at all, or, among a platform's
// candidates, a node that rendezvous hashing does not choose.
func TestPlanSticky(t *testing.T) {
	three := []record.Node{
		mk("n1", 4, "amd64", "arm64"),
		mk("n2", 4, "amd64", "arm64"),
		mk("n3", 4, "amd64", "arm64"),
	}
	riscv := mk("n4", 4, "riscv64", "")
	for k := range 30 {
		affinity := fmt.Sprintf("image-%d", k)
		for _, targets := range []string{"amd64,arm64", ""} {
			opts := Options{Affinity: affinity}
			if targets != "" {
				opts.Platforms = plats(t, targets)
			}
			before := where(mustPlan(t, three, opts))

			// A node that cannot build amd64 or arm64 moves neither (by
			// default it adds riscv64 as a target, on itself).
			after := where(mustPlan(t, append(slices.Clone(three), riscv), opts))
			if after["linux/riscv64"] == "n4" {
				delete(after, "linux/riscv64")
			}
			if !maps.Equal(after, before) {
				t.Errorf("affinity %q, targets %q: adding a riscv64 node moved %v to %v", affinity, targets, before, after)
			}

			// Removing a node with no job moves nothing.
			busy := map[string]bool{}
			for _, v := range before {
				busy[strings.TrimSuffix(v, "*")] = true
			}
			for i, n := range three {
				if busy[n.Name] {
					continue
				}
				less := slices.Delete(slices.Clone(three), i, i+1)
				if after := where(mustPlan(t, less, opts)); !maps.Equal(after, before) {
					t.Errorf("affinity %q, targets %q: removing idle %s moved %v to %v", affinity, targets, n.Name, before, after)
				}
			}
		}
	}
}

// TestPlanRendezvous: for a platform with native nodes, adding a node moves
// the platform only to the new node, and removing a node that was not chosen
// moves it nowhere.
func TestPlanRendezvous(t *testing.T) {
	var farm []record.Node
	for i := range 8 {
		farm = append(farm, mk(fmt.Sprintf("n%d", i), 4, "amd64", ""))
	}
	extra := mk("new", 4, "amd64", "")
	moved := 0
	for k := range 100 {
		opts := Options{Platforms: plats(t, "amd64"), Affinity: fmt.Sprintf("image-%d", k)}
		before := where(mustPlan(t, farm, opts))["linux/amd64"]
		after := where(mustPlan(t, append(slices.Clone(farm), extra), opts))["linux/amd64"]
		if after != before && after != "new" {
			t.Errorf("affinity %q: adding a node moved amd64 from %s to %s", opts.Affinity, before, after)
		}
		if after == "new" {
			moved++
		}
		for i := range farm {
			if farm[i].Name == before {
				continue
			}
			less := slices.Delete(slices.Clone(farm), i, i+1)
			if got := where(mustPlan(t, less, opts))["linux/amd64"]; got != before {
				t.Errorf("affinity %q: removing %s moved amd64 from %s to %s", opts.Affinity, farm[i].Name, before, got)
			}
		}
	}
	// A ninth node should win about one key in nine.
	if moved == 0 || moved > 30 {
		t.Errorf("the new node took %d of 100 keys; want about 11", moved)
	}
}

func TestPlanAffinitySpreads(t *testing.T) {
	var farm []record.Node
	for i := range 8 {
		farm = append(farm, mk(fmt.Sprintf("n%d", i), 4, "amd64", ""))
	}
	used := map[string]bool{}
	for k := range 32 {
		opts := Options{Platforms: plats(t, "amd64"), Affinity: fmt.Sprintf("registry.example/app-%d", k)}
		first := where(mustPlan(t, farm, opts))["linux/amd64"]
		if again := where(mustPlan(t, farm, opts))["linux/amd64"]; again != first {
			t.Fatalf("affinity %q: %s, then %s", opts.Affinity, first, again)
		}
		used[first] = true
	}
	if len(used) < 4 {
		t.Errorf("32 images all went to %d of 8 nodes: %v", len(used), slices.Sorted(maps.Keys(used)))
	}
}

func TestPlanAlternatives(t *testing.T) {
	farm := []record.Node{
		mk("e1", 4, "amd64", "arm64"),
		mk("n1", 4, "arm64", ""),
		mk("n2", 4, "arm64/v8", "amd64"),
		mk("e2", 4, "amd64", "aarch64"),
		mk("n3", 4, "aarch64", ""),
		mk("x", 4, "amd64", ""), // cannot build arm64 at all
	}
	for k := range 20 {
		for _, em := range []Emulation{EmulationAuto, EmulationNever} {
			opts := Options{Platforms: plats(t, "arm64"), Affinity: fmt.Sprint(k), Emulation: em}
			res := mustPlan(t, farm, opts)
			job := res.Jobs[0]
			prefix := scorePrefix(opts.Affinity, "linux/arm64")
			byScoreDesc := func(names ...string) []string {
				slices.SortFunc(names, func(a, b string) int {
					if c := cmp64(scoreWith(prefix, b), scoreWith(prefix, a)); c != 0 {
						return c
					}
					return strings.Compare(a, b)
				})
				return names
			}
			natives := byScoreDesc("n1", "n2", "n3")
			if job.Node.Name != natives[0] || job.Emulated {
				t.Fatalf("arm64 on %s (emulated %v), want the best-scoring native node %s", job.Node.Name, job.Emulated, natives[0])
			}
			want := natives[1:]
			if em == EmulationAuto {
				want = append(want, byScoreDesc("e1", "e2")...)
			}
			var got []string
			for _, a := range job.Alternatives {
				got = append(got, a.Name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("affinity %q, emulation %s: alternatives %v, want %v", opts.Affinity, em, got, want)
			}
		}
	}
}

func cmp64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestPlanRecords: jobs carry whole node records, re-normalised, with the
// fields farm does not know.
func TestPlanRecords(t *testing.T) {
	a := mk("a", 4, "x86_64,amd64", "aarch64,linux/arm64/v8,amd64,arm")
	a.Extra = record.Extra{"zone": json.RawMessage(`"eu-1"`)}
	b := mk("b", 4, "amd64", "")
	res := mustPlan(t, []record.Node{a, b, down("c", "timeout")}, Options{Platforms: plats(t, "arm64,amd64")})
	if len(res.Jobs) != 2 || res.Jobs[0].Platform != "linux/arm64" || res.Jobs[1].Platform != "linux/amd64" {
		t.Fatalf("jobs %v: want arm64 then amd64, in the order asked for", where(res))
	}
	job := res.Jobs[0]
	if job.Node.Name != "a" || !job.Emulated {
		t.Fatalf("arm64 on %s, emulated %v: want a, emulated", job.Node.Name, job.Emulated)
	}
	if got := string(job.Node.Extra["zone"]); got != `"eu-1"` {
		t.Errorf("zone = %s: unknown fields must be passed on", got)
	}
	if !slices.Equal(job.Node.Native, []string{"linux/amd64"}) || !slices.Equal(job.Node.Emulated, []string{"linux/arm/v7", "linux/arm64"}) {
		t.Errorf("node platforms native %v, emulated %v: want canonical, deduplicated, sorted, no native in emulated", job.Node.Native, job.Node.Emulated)
	}
	if job.Node.URI != a.URI || job.Node.Identity != a.Identity || job.Node.CPUs != 4 {
		t.Errorf("node record %+v: want the whole record", job.Node)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Name != "c" {
		t.Errorf("skipped %v: want c", res.Skipped)
	}
}

func TestPlanExplain(t *testing.T) {
	farm := []record.Node{mk("a", 8, "amd64,arm64", "s390x"), mk("b", 2, "amd64", "s390x"), mk("c", 2, "amd64,386", "")}
	opts := Options{Platforms: plats(t, "amd64,386,s390x,arm64,linux/arm64/v8"), Explain: true}
	res := mustPlan(t, farm, opts)
	if without := mustPlan(t, farm, Options{Platforms: opts.Platforms}); without.Decisions != nil {
		t.Errorf("decisions without Explain: %v", without.Decisions)
	}
	// Placed fewest candidates first: 386 (c only), arm64 (a only), then
	// s390x (a and b, emulated), then amd64 (a, b, c): by then every
	// candidate has a job, and a, with 8 CPUs, is the least loaded.
	want := []struct{ platform, node, reason string }{
		{"linux/386", "c", "the only native candidate"},
		{"linux/arm64", "a", "the only native candidate"},
		{"linux/s390x", "b", "emulated because no reachable node builds linux/s390x natively; the only idle one of 2 emulated candidates"},
		{"linux/amd64", "a", "all 3 native candidates are busy (jobs of this plan or builds running there); lowest projected load (jobs+builds+1)/cpus = 2/8"},
	}
	if len(res.Decisions) != len(want) {
		t.Fatalf("%d decisions, want %d", len(res.Decisions), len(want))
	}
	jobs := where(res)
	for i, w := range want {
		d := res.Decisions[i]
		if d.Platform != w.platform || d.Node != w.node || d.Reason != w.reason {
			t.Errorf("decision %d: %s -> %s: %s\nwant %s -> %s: %s", i, d.Platform, d.Node, d.Reason, w.platform, w.node, w.reason)
		}
		if d.Candidates[0].Node != d.Node || strings.TrimSuffix(jobs[d.Platform], "*") != d.Node {
			t.Errorf("%s: chosen %s, first candidate %s, job on %s", d.Platform, d.Node, d.Candidates[0].Node, jobs[d.Platform])
		}
	}
	amd64 := res.Decisions[3].Candidates
	if amd64[0].Jobs != 1 || amd64[0].CPUs != 8 || amd64[1].Jobs != 1 || amd64[1].CPUs != 2 {
		t.Errorf("amd64 candidates %+v: want the load as it stood", amd64)
	}
}

// A farm of 9,000 nodes that all build the platform: every job line stays
// far below the record limit (issue 15 item 5: it was over 4 MiB), with
// the best DefaultMaxAlternatives as alternatives; the bound is a flag.
func TestAlternativesAreBounded(t *testing.T) {
	nodes := make([]record.Node, 9000)
	for i := range nodes {
		nodes[i] = record.Node{Name: fmt.Sprintf("node-%04d", i), URI: fmt.Sprintf("ssh://core@10.0.%d.%d/run/podman/podman.sock", i/250, i%250),
			Native: []string{"linux/amd64"}, Emulated: []string{"linux/arm64"}, CPUs: 1 + i%16}
	}
	for _, max := range []int{0, 3} {
		res, err := Plan(nodes, Options{Platforms: []platform.Platform{platform.MustParse("linux/amd64"), platform.MustParse("linux/arm64")}, MaxAlternatives: max})
		if err != nil {
			t.Fatal(err)
		}
		want := max
		if max == 0 {
			want = DefaultMaxAlternatives
		}
		for _, job := range res.Jobs {
			line, err := json.Marshal(job)
			if err != nil {
				t.Fatal(err)
			}
			if len(job.Alternatives) != want || len(line) > 64<<10 {
				t.Errorf("%s: %d alternatives, a line of %d bytes; want %d and a few KiB", job.Platform, len(job.Alternatives), len(line), want)
			}
		}
	}
}
