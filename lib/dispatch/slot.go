package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/record"
)

// Late binding at dispatch: runs started together both plan before either
// builds, so farm-plan puts their jobs on the same node (each plan sees
// only its own jobs, and the nodes' load from before either began). So a
// job binds to its node only when it starts there.
//
// While a job works on a node (upload, build, pull-back or push), it holds
// a build claim there: an exclusive flock(1) on JOB.lock in the claims
// directory of the node's podman service (node.ClaimDir), held by a shell
// on the node whose stdin is the run's connection, as the run's lease is
// (lease.go): it ends when the job ends or the run dies. A claim file that
// can be locked is a dead job's. Taking a claim counts the live ones under
// the directory's mutex (an flock on .mutex), removing the dead ones, so
// that of two jobs claiming one node at once exactly one finds it idle.
//
// When the planned node has another live claim, the job moves to the first
// of its alternatives of the same class (native or emulated for the
// platform), reachable, with at least minFreeToMove of free storage when
// its record says, that has none. When all of them are busy, it builds on
// the planned node. A node that cannot be claimed (tcp://, no shell, no
// flock, StopNone) is never claimed and never moved from.

// placeBudget bounds the placing of one job (connecting to its planned
// node and to alternatives, taking claims), as does the job's --timeout
// when shorter: claims only spread the load, and a node that does not
// answer in time is the job's own attempt's to meet.
const placeBudget = 10 * time.Second

// minFreeToMove is the storage an alternative must have free (when its
// record says) to take over a job from a busy node.
const minFreeToMove = 1 << 30

// slotScript takes the claim name in dir (a node.ClaimDir) and prints
// "held N", N the other live claims there, once it holds it; "noflock"
// without flock(1). It holds the claim until its stdin ends.
func slotScript(dir, name string) string {
	return fmt.Sprintf(`command -v flock >/dev/null 2>&1 || { echo noflock; exit 0; }
d=%s; f="$d/%s.lock"
mkdir -p "$d" || exit 1
exec 8>>"$d/.mutex" || exit 1
flock -x 8 || exit 1
n=0
for c in "$d"/*.lock; do
	[ -f "$c" ] || continue
	if flock -n -x "$c" true 2>/dev/null; then rm -f "$c"; else n=$((n + 1)); fi
done
exec 9>>"$f" || exit 1
flock -x 9 || exit 1
exec 8>&-
echo "held $n"
cat >/dev/null
rm -f "$f"
exit 0
`, dir, name)
}

// maxClaimsPerSession bounds the claims a run holds over one connection:
// each is a session of its own, and sshd allows 10 on a connection
// (MaxSessions) for the lease, the claims and every command the run sends.
// A job beyond it builds unclaimed, where it was planned: its run's other
// claims already show the node busy.
const maxClaimsPerSession = 4

// claimCount counts the claims the run holds per session.
type claimCount struct {
	mu   sync.Mutex
	held map[*conn.Session]int
}

// add counts one more claim over s, and reports false (counting nothing)
// when s has maxClaimsPerSession already; the returned func uncounts it.
func (c *claimCount) add(s *conn.Session) (func(), bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[*conn.Session]int{}
	}
	if c.held[s] >= maxClaimsPerSession {
		return nil, false
	}
	c.held[s]++
	return func() { c.mu.Lock(); c.held[s]--; c.mu.Unlock() }, true
}

// noClaim is the release of a claim not taken.
func noClaim() {}

// takeSlot claims a build slot for one job on n. It returns the claim's
// release (nil when n cannot be claimed) and how many other live claims n
// has.
func (r *Runner) takeSlot(ctx context.Context, n record.Node) (func(), int, error) {
	if kind, ok := node.FromRecord(n); ok && kind.Stop == record.StopNone {
		return nil, 0, nil
	}
	s, err := r.sessions.get(ctx, n)
	if err != nil {
		return nil, 0, err
	}
	if !s.HasShell() {
		return nil, 0, nil
	}
	uncount, ok := r.claims.add(s)
	if !ok {
		return nil, 0, nil
	}
	release, line, err := holdLine(ctx, s, slotScript(node.ClaimDir(node.SocketPath(n.URI)), newJobID(r.runID)))
	var others int
	if err == nil {
		if others, err = strconv.Atoi(strings.TrimPrefix(line, "held ")); err != nil {
			release()
			err = fmt.Errorf("unexpected answer %q", line)
		}
	}
	if err != nil {
		uncount()
		if errors.Is(err, errNoFlock) {
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("claiming a build slot on %s: %w", n.Name, err)
	}
	return func() { release(); uncount() }, others, nil
}

// claimOn claims a slot on n whatever its load (a fail-over target); a
// failure is the job's to meet when it connects.
func (r *Runner) claimOn(ctx context.Context, n record.Node) func() {
	release, _, err := r.takeSlot(ctx, n)
	if err != nil {
		r.cfg.Log.Debug("no build claim", "node", n.Name, "error", err)
	}
	if release == nil {
		return noClaim
	}
	return release
}

// place binds the job to a node: its planned node, or an idle alternative
// of the same class when another job holds the planned node. It returns
// the candidates in the order to try them (the chosen node first) and the
// release of the job's claim on the first.
func (r *Runner) place(ctx context.Context, job *record.Job, plat platform.Platform) ([]record.Node, func()) {
	candidates := append([]record.Node{job.Node}, job.Alternatives...)
	planned := job.Node
	if !planned.Reachable() {
		return candidates, noClaim
	}
	budget := placeBudget
	if r.cfg.Timeout > 0 {
		budget = min(budget, r.cfg.Timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	release, others, err := r.takeSlot(ctx, planned)
	if err != nil || release == nil {
		if err != nil {
			r.cfg.Log.Debug("no build claim", "node", planned.Name, "error", err)
		}
		return candidates, noClaim
	}
	if others == 0 {
		return candidates, release
	}
	class := native(planned, plat)
	for i, alt := range job.Alternatives {
		if native(alt, plat) != class || !alt.Reachable() || (alt.Load != nil && alt.Load.StorageFree < minFreeToMove) {
			continue
		}
		altRelease, altOthers, err := r.takeSlot(ctx, alt)
		if err != nil || altRelease == nil || altOthers > 0 {
			if altRelease != nil {
				altRelease()
			}
			continue // busy, or cannot be claimed: maybe busy
		}
		release()
		r.cfg.Log.Info("moving a job to an idle node", "platform", plat.String(), "from", planned.Name, "to", alt.Name,
			"reason", "other farm jobs hold the planned node", "jobs", others)
		moved := append([]record.Node{alt, planned}, job.Alternatives[:i]...)
		return append(moved, job.Alternatives[i+1:]...), altRelease
	}
	r.cfg.Log.Debug("the planned node is busy and no alternative is idle", "platform", plat.String(), "node", planned.Name, "others", others)
	return candidates, release
}
