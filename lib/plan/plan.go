// Package plan is farm-plan's logic: it turns node records into one job
// record per target platform.
//
// The plan is a pure function of its input. podman farm takes whichever node
// answers first and buildx the first node declared, so the same command
// builds on different nodes from one run to the next; farm-plan gives the
// same plan for the same nodes, whatever order their records arrive in, so a
// saved plan can be reviewed, diffed and replayed.
//
// Platforms are placed one at a time, most constrained first (fewest
// candidate nodes, then by name). For each, the candidates are the reachable
// nodes that build it natively or, only when there are none of those, the
// nodes that emulate it. Among them an idle node beats a busy one (no node
// gets a second job while a capable node has none, and a node running
// another run's builds, as farm-nodes saw it, is busy); among busy nodes the
// one with the lowest projected load (jobs+builds+1)/cpus wins; then a node
// whose builds can be stopped, and one whose load average is below its
// cpus; the remaining ties go to the highest rendezvous score
// hash(affinity, platform, node). A node short of storage comes last. Rendezvous
// hashing is what keeps plans sticky: a platform's choice among equal nodes
// depends only on those nodes' names, so adding or removing a node that is
// not chosen leaves it where it was.
package plan

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/record"
)

// Stage is the name farm-plan reports itself by, in messages and in the
// "stage" field of the error records it writes.
const Stage = "farm-plan"

// Emulation says whether a platform may go to a node that emulates it.
type Emulation string

const (
	// EmulationAuto emulates a platform only when no reachable node builds
	// it natively.
	EmulationAuto Emulation = "auto"
	// EmulationNever fails a platform that no reachable node builds
	// natively: an emulated build can take ten times as long, and some
	// builds (JITs, some test suites) misbehave under qemu.
	EmulationNever Emulation = "never"
)

// ParseEmulation checks a --emulation value.
func ParseEmulation(s string) (Emulation, error) {
	switch e := Emulation(s); e {
	case EmulationAuto, EmulationNever:
		return e, nil
	}
	return "", fmt.Errorf("%q: want auto or never", s)
}

// Options are farm-plan's flags.
type Options struct {
	// Platforms are the targets, in the order the jobs are written. Empty
	// means every platform some reachable node builds natively, sorted.
	Platforms []platform.Platform
	// Emulation is EmulationAuto when empty.
	Emulation Emulation
	// Affinity is mixed into every rendezvous score, so that two images
	// (two keys) put the same platform on different nodes while each image
	// keeps its own placement from one run to the next.
	Affinity string
	// Explain asks Plan to fill Result.Decisions.
	Explain bool
	// MaxAlternatives bounds each job's alternatives to the best ones
	// (DefaultMaxAlternatives when 0), so a job line stays far below the
	// 4 MiB record limit however big the farm (--max-alternatives).
	MaxAlternatives int
}

// DefaultMaxAlternatives is --max-alternatives' default: enough fail-overs
// for any failure that is not the whole farm's, and a job line of a few
// KiB with lab-sized node records (17 node records at most).
const DefaultMaxAlternatives = 16

// Result is a plan.
type Result struct {
	// Jobs has one job per target platform, in target order.
	Jobs []record.Job
	// Skipped are the nodes farm-nodes could not reach, sorted by name.
	Skipped []record.Node
	// Decisions say why each platform went where it did, in the order the
	// platforms were placed. Only with Options.Explain.
	Decisions []Decision
}

// Decision is one platform's placement, for --explain.
type Decision struct {
	Platform string
	Node     string
	Emulated bool
	Reason   string
	// Candidates are ranked as they stood when the platform was placed:
	// the class it was placed in by who takes the next job (the chosen node
	// first), then the other class by score.
	Candidates []Candidate
}

// Candidate is a node that could take a platform.
type Candidate struct {
	Node     string
	Emulated bool
	// Jobs is how many jobs the node had before this platform was placed.
	Jobs int
	// Builds is how many RUN steps of other runs farm-nodes saw there.
	Builds int
	CPUs   int
	Score  uint64
	// Stop and Load are the node record's (Load nil when it does not say).
	Stop string
	Load *record.Load
}

// ErrNoNodes means the input held no node record at all.
var ErrNoNodes = errors.New("no node records on stdin; farm-plan reads what farm-nodes writes: farm-nodes | farm-plan")

// NodeError is a node record that cannot be planned with. Index is the
// record's position in the slice given to Plan, so that the caller can name
// the input line.
type NodeError struct {
	Index int
	Err   error
}

func (e *NodeError) Error() string { return e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// PlatformError is a target platform that no reachable node can take.
type PlatformError struct {
	Platform string
	Reason   string
	// Considered describes every node looked at, with its native and
	// emulated platforms, so the user sees why none fits.
	Considered string
}

func (e *PlatformError) Error() string {
	return fmt.Sprintf("%s: %s; nodes considered: %s", e.Platform, e.Reason, e.Considered)
}

// Unplaceable lists every target platform that cannot be placed, so that one
// run reports them all rather than one per attempt.
type Unplaceable []*PlatformError

func (u Unplaceable) Error() string {
	var b strings.Builder
	for i, e := range u {
		if i > 0 {
			// stage.Report prefixes only the first line; prefix the others
			// so every line of the message says which stage wrote it.
			b.WriteString("\n" + Stage + ": ")
		}
		fmt.Fprintf(&b, "cannot place %s: %s", e.Platform, e.Reason)
	}
	fmt.Fprintf(&b, "\n%s: nodes considered: %s", Stage, u[0].Considered)
	return b.String()
}

// maxListed bounds the nodes an error message describes one by one: a
// message about a 10,000-node farm must still be readable.
const maxListed = 12

// node is a reachable node while planning.
type node struct {
	rec  record.Node // platforms normalised
	cpus int         // at least 1
	jobs int
	// From the node record's load and stop (zero when it does not say):
	builds     int  // RUN steps running there now, other runs' included
	saturated  bool // its load average is at least its cpus, or unknown
	lowStorage bool // less than MinStorageFree bytes free
	noStop     bool // stop "none": a cancelled build runs on there
}

// MinStorageFree is the free storage below which a node ranks after every
// node with more: a build there is likely to fail for space.
const MinStorageFree = 1 << 30

// newNode is a reachable node as planning sees it. A hand-written record
// may leave cpus out; it counts as one CPU rather than dividing by zero.
func newNode(rec record.Node) node {
	n := node{rec: rec, cpus: max(rec.CPUs, 1), noStop: rec.Stop == record.StopNone}
	// A node that does not say how busy it is ranks as a saturated machine
	// among otherwise equal candidates: never ahead of one that said it is
	// not (on a farm where no record has a load, this changes nothing).
	n.saturated = true
	if l := rec.Load; l != nil {
		n.builds = max(l.Builds, 0)
		n.saturated = l.Average >= float64(n.cpus)
		n.lowStorage = l.StorageFree < MinStorageFree
	}
	return n
}

// idle: no job of this plan and no build of another run.
func (n *node) idle() bool { return n.jobs == 0 && n.builds == 0 }

// work is what the node would carry with one more job.
func (n *node) work() int { return n.jobs + n.builds + 1 }

// target is a platform to place and the nodes that can take it.
type target struct {
	name     string
	native   []int // indices into the node slice, in name order
	emulated []int
}

// Plan places every target platform on a node. It reads nothing but its
// arguments, so equal input always gives an equal plan.
func Plan(recs []record.Node, opts Options) (*Result, error) {
	if len(recs) == 0 {
		return nil, ErrNoNodes
	}
	if opts.Emulation == "" {
		opts.Emulation = EmulationAuto
	}
	if _, err := ParseEmulation(string(opts.Emulation)); err != nil {
		return nil, fmt.Errorf("emulation %w", err)
	}
	nodes, skipped, err := normaliseNodes(recs)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no reachable node: %s", describeSkipped(skipped))
	}
	targets, err := buildTargets(nodes, opts)
	if err != nil {
		return nil, err
	}
	if err := checkPlaceable(targets, nodes, skipped, opts.Emulation); err != nil {
		return nil, err
	}

	// Most constrained first: a platform only one node can build must get
	// that node before a platform with many candidates takes it. Ties by
	// name, so the order never depends on the input's order.
	order := make([]int, len(targets))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ta, tb := &targets[a], &targets[b]
		if c := cmp.Compare(len(ta.best(opts.Emulation)), len(tb.best(opts.Emulation))); c != 0 {
			return c
		}
		return strings.Compare(ta.name, tb.name)
	})

	res := &Result{Jobs: make([]record.Job, len(targets)), Skipped: skipped}
	for _, ti := range order {
		t := &targets[ti]
		job, dec := place(t, nodes, opts)
		res.Jobs[ti] = job
		if opts.Explain {
			res.Decisions = append(res.Decisions, dec)
		}
	}
	return res, nil
}

// best is the class a platform is placed in: native nodes if there are any,
// otherwise (unless emulation is forbidden) the emulating ones.
func (t *target) best(em Emulation) []int {
	if len(t.native) > 0 || em == EmulationNever {
		return t.native
	}
	return t.emulated
}

// ranked is a candidate with what ranking it needs.
type ranked struct {
	idx      int
	emulated bool
	score    uint64
}

// place chooses a node for t, charges it the job and builds the job record.
func place(t *target, nodes []node, opts Options) (record.Job, Decision) {
	prefix := scorePrefix(opts.Affinity, t.name)
	cands := make([]ranked, 0, len(t.native)+len(t.emulated))
	for _, i := range t.native {
		cands = append(cands, ranked{idx: i, score: scoreWith(prefix, nodes[i].rec.Name)})
	}
	emulatedClass := len(t.native) == 0
	if opts.Emulation != EmulationNever {
		for _, i := range t.emulated {
			cands = append(cands, ranked{idx: i, emulated: true, score: scoreWith(prefix, nodes[i].rec.Name)})
		}
	}
	// The chosen node comes from the best class only: native nodes when
	// any exists, which checkPlaceable guarantees is non-empty.
	class := cands[:len(t.native)]
	if emulatedClass {
		class = cands
	}
	chosen := 0
	for i := 1; i < len(class); i++ {
		if byLoad(nodes, class[i], class[chosen]) < 0 {
			chosen = i
		}
	}
	win := cands[chosen]

	var dec Decision
	if opts.Explain {
		dec = explain(t, nodes, cands, class, win)
	}

	// Alternatives are for failing over at build time, when the loads of
	// this plan no longer mean much: order them by class, then by score, so
	// a platform fails over to the same node every time.
	alts := make([]ranked, 0, len(cands)-1)
	alts = append(alts, cands[:chosen]...)
	alts = append(alts, cands[chosen+1:]...)
	slices.SortFunc(alts, func(a, b ranked) int { return byScore(nodes, a, b) })
	max := opts.MaxAlternatives
	if max <= 0 {
		max = DefaultMaxAlternatives
	}
	if len(alts) > max {
		alts = alts[:max]
	}
	job := record.Job{
		Platform:     t.name,
		Node:         nodes[win.idx].rec,
		Emulated:     win.emulated,
		Alternatives: make([]record.Node, len(alts)),
	}
	for i, a := range alts {
		job.Alternatives[i] = nodes[a.idx].rec
	}
	nodes[win.idx].jobs++
	return job, dec
}

// byLoad orders candidates of one class by who takes the next job, first
// rule that decides: enough free storage; idle (no job in this plan, no
// build of another run there); the lowest projected load
// (jobs+builds+1)/cpus; builds there can be stopped; a load average below
// its cpus; the highest score; the name. So no two candidates ever tie.
func byLoad(nodes []node, a, b ranked) int {
	na, nb := &nodes[a.idx], &nodes[b.idx]
	if c := falseFirst(na.lowStorage, nb.lowStorage); c != 0 {
		return c
	}
	if c := falseFirst(!na.idle(), !nb.idle()); c != 0 {
		return c
	}
	// Idle nodes all have load zero, which keeps a platform on its node
	// when an unrelated (even a bigger) node joins.
	if !na.idle() {
		// wa/ca < wb/cb without floating point.
		if c := cmp.Compare(na.work()*nb.cpus, nb.work()*na.cpus); c != 0 {
			return c
		}
	}
	if c := falseFirst(na.noStop, nb.noStop); c != 0 {
		return c
	}
	if c := falseFirst(na.saturated, nb.saturated); c != 0 {
		return c
	}
	return byScoreOnly(nodes, a, b)
}

// falseFirst orders false before true.
func falseFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// byScore orders candidates native first, then by score.
func byScore(nodes []node, a, b ranked) int {
	if a.emulated != b.emulated {
		if !a.emulated {
			return -1
		}
		return 1
	}
	return byScoreOnly(nodes, a, b)
}

func byScoreOnly(nodes []node, a, b ranked) int {
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	return strings.Compare(nodes[a.idx].rec.Name, nodes[b.idx].rec.Name)
}

// normaliseNodes checks every record, re-normalises its platform lists (a
// hand-written record may say aarch64 or linux/arm64/v8) and splits the
// reachable nodes, sorted by name, from the unreachable ones.
func normaliseNodes(recs []record.Node) ([]node, []record.Node, error) {
	// A farm has thousands of nodes but a few dozen platform spellings;
	// parsing each spelling once keeps planning fast.
	canon := map[string]string{}
	norm := func(list []string) ([]string, error) {
		out := make([]string, 0, len(list))
		for _, s := range list {
			c, ok := canon[s]
			if !ok {
				var err error
				if c, err = platform.Canonical(s); err != nil {
					return nil, err
				}
				canon[s] = c
			}
			out = append(out, c)
		}
		slices.Sort(out)
		return slices.Compact(out), nil
	}

	seen := make(map[string]bool, len(recs))
	var nodes []node
	var skipped []record.Node
	for i, rec := range recs {
		if strings.TrimSpace(rec.Name) == "" {
			return nil, nil, &NodeError{Index: i, Err: errors.New(`node record without a "name"`)}
		}
		if seen[rec.Name] {
			// Names are the rendezvous keys and what alternatives are told
			// apart by; two records for one name make the plan ambiguous.
			return nil, nil, &NodeError{Index: i, Err: fmt.Errorf("node %q: a second record for this node; each node record must name a different node", rec.Name)}
		}
		seen[rec.Name] = true
		native, err := norm(rec.Native)
		if err != nil {
			return nil, nil, &NodeError{Index: i, Err: fmt.Errorf("node %q: native %w", rec.Name, err)}
		}
		emulated, err := norm(rec.Emulated)
		if err != nil {
			return nil, nil, &NodeError{Index: i, Err: fmt.Errorf("node %q: emulated %w", rec.Name, err)}
		}
		// A node that builds a platform natively never emulates it.
		emulated = slices.DeleteFunc(emulated, func(p string) bool {
			_, found := slices.BinarySearch(native, p)
			return found
		})
		rec.Native, rec.Emulated = native, emulated
		if !rec.Reachable() {
			skipped = append(skipped, rec)
			continue
		}
		nodes = append(nodes, newNode(rec))
	}
	slices.SortFunc(nodes, func(a, b node) int { return strings.Compare(a.rec.Name, b.rec.Name) })
	slices.SortFunc(skipped, func(a, b record.Node) int { return strings.Compare(a.Name, b.Name) })
	return nodes, skipped, nil
}

// buildTargets lists the target platforms with their candidate nodes.
func buildTargets(nodes []node, opts Options) ([]target, error) {
	index := map[string]int{}
	var all []target
	add := func(p string) int {
		i, ok := index[p]
		if !ok {
			i = len(all)
			index[p] = i
			all = append(all, target{name: p})
		}
		return i
	}
	// nodes are in name order, so every candidate list is too.
	for ni := range nodes {
		for _, p := range nodes[ni].rec.Native {
			t := &all[add(p)]
			t.native = append(t.native, ni)
		}
		for _, p := range nodes[ni].rec.Emulated {
			t := &all[add(p)]
			t.emulated = append(t.emulated, ni)
		}
	}

	var targets []target
	if len(opts.Platforms) == 0 {
		for _, t := range all {
			if len(t.native) > 0 {
				targets = append(targets, t)
			}
		}
		if len(targets) == 0 {
			return nil, errors.New("no target platforms: no reachable node reports a native platform; name the targets with --platforms")
		}
		slices.SortFunc(targets, func(a, b target) int { return strings.Compare(a.name, b.name) })
		return targets, nil
	}
	seen := map[string]bool{}
	for _, p := range opts.Platforms {
		name := p.String()
		if seen[name] {
			continue
		}
		seen[name] = true
		if i, ok := index[name]; ok {
			targets = append(targets, all[i])
		} else {
			targets = append(targets, target{name: name})
		}
	}
	return targets, nil
}

// checkPlaceable fails with every platform no node can take, before any job
// is planned.
func checkPlaceable(targets []target, nodes []node, skipped []record.Node, em Emulation) error {
	var errs Unplaceable
	considered := ""
	for i := range targets {
		t := &targets[i]
		if len(t.best(em)) > 0 {
			continue
		}
		if considered == "" {
			considered = describeNodes(nodes, skipped)
		}
		reason := "no reachable node builds it natively or by emulation"
		if len(t.emulated) > 0 {
			names := make([]string, len(t.emulated))
			for j, ni := range t.emulated {
				names[j] = nodes[ni].rec.Name
			}
			reason = fmt.Sprintf("no reachable node builds it natively, and --emulation=never forbids emulating it on %s", listNames(names))
		}
		errs = append(errs, &PlatformError{Platform: t.name, Reason: reason, Considered: considered})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// describeNodes says what every reachable node builds, and which nodes were
// skipped, for error messages.
func describeNodes(nodes []node, skipped []record.Node) string {
	var parts []string
	for i := range nodes {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(nodes)-i))
			break
		}
		n := &nodes[i].rec
		parts = append(parts, fmt.Sprintf("%s (native: %s; emulated: %s)", n.Name, listOrNone(n.Native), listOrNone(n.Emulated)))
	}
	s := strings.Join(parts, ", ")
	if len(skipped) > 0 {
		s += "; skipped as unreachable: " + describeSkipped(skipped)
	}
	return s
}

func describeSkipped(skipped []record.Node) string {
	var parts []string
	for i, n := range skipped {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(skipped)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", n.Name, n.Error))
	}
	return strings.Join(parts, ", ")
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

func listNames(names []string) string {
	if len(names) > maxListed {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
	}
	return strings.Join(names, ", ")
}
