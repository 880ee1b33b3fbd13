package dispatch

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containers/podman/v4/pkg/errorhandling"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/record"
)

// A run's mark, and how a later run tells a dead run's leftovers from a
// live run's.
//
// Every run has an id (12 hex digits); each of its jobs is named
// farm-RUNJOB (the run's id, then 8 hex digits of the job's own). That
// name is the job's cgroup and its RUN steps' host entry (cgroup.go), and
// buildah keeps the host entry in each working container's buildah.json:
// whatever a run leaves on a node carries its id.
//
// While a run uses a node, it holds a lease there: a shared flock(1) on
// ~/.cache/farm/runs/RUN.lock, held by a shell on the node whose stdin is
// the run's connection (for unix:// nodes, a pipe from the run). The lease
// ends when the run closes it, and also when the run dies in any way (the
// connection closes, the shell reads end-of-file and exits, the kernel
// drops the lock). So a run is dead on a node exactly when its lock file
// can be locked exclusively there, and while a run holds that exclusive
// lock, the dead run cannot come back (a new session of a live run would
// wait for it, and builds only after it has its lease). Only then does a
// later run stop the dead run's RUN steps and remove its working
// containers, before it builds there itself.

// leaseDir is where the lock files live on a node (its user's home).
const leaseDir = `"${HOME:-/tmp}/.cache/farm/runs"`

// newRunID names a run.
func newRunID() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// holdScript holds run's lock on the node until its stdin ends; it prints
// "held" once it does. shared: the run's own lease; otherwise an exclusive
// lock taken without waiting, or "busy". The file is checked to still be
// the one at the path once locked (whoever ends a lease removes the file),
// so two lockers never hold locks on two different files of one name.
func holdScript(run string, shared bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "command -v flock >/dev/null 2>&1 || { echo noflock; exit 0; }\nd=%s; f=\"$d/%s.lock\"\nmkdir -p \"$d\" || exit 1\n", leaseDir, run)
	if shared {
		b.WriteString(`while :; do
	exec 9>>"$f" || exit 1
	flock -s 9 || exit 1
	[ "$f" -ef /dev/fd/9 ] && break
done
echo held
cat >/dev/null
flock -n -x 9 && rm -f "$f"
exit 0
`)
	} else {
		b.WriteString(`exec 9>>"$f" || exit 1
flock -n -x 9 || { echo busy; exit 0; }
[ "$f" -ef /dev/fd/9 ] || { echo busy; exit 0; }
echo held
cat >/dev/null
rm -f "$f"
exit 0
`)
	}
	return b.String()
}

// errNoFlock: the node has no flock(1); runs there neither hold leases nor
// clean up after others.
var errNoFlock = errors.New("no flock(1) on the node")

// errBusy: the lock is held; its run is alive.
var errBusy = errors.New("the run holds its lease")

// hold runs holdScript on the node and returns once the lock is held; the
// returned func releases it (and waits for the shell to end).
func hold(ctx context.Context, s *conn.Session, script string) (func(), error) {
	release, _, err := holdLine(ctx, s, script)
	return release, err
}

// holdLine is hold for scripts that say more once they hold their lock: a
// first line "held" or "held WORDS", returned.
func holdLine(ctx context.Context, s *conn.Session, script string) (func(), string, error) {
	var stdin io.WriteCloser
	var stdout io.Reader
	var wait func() error
	var abort func() // ends it without waiting for the lock
	if c := s.SSH(); c != nil {
		sess, err := c.NewSession()
		if err != nil {
			return nil, "", fmt.Errorf("ssh session: %w", err)
		}
		if stdin, err = sess.StdinPipe(); err == nil {
			stdout, err = sess.StdoutPipe()
		}
		if err == nil {
			err = sess.Start(script)
		}
		if err != nil {
			sess.Close()
			return nil, "", err
		}
		wait = func() error { defer sess.Close(); return sess.Wait() }
		abort = func() { sess.Close() }
	} else {
		if !s.HasShell() {
			return nil, "", conn.ErrNoShell
		}
		cmd := exec.Command("/bin/sh", "-c", script)
		var err error
		if stdin, err = cmd.StdinPipe(); err == nil {
			stdout, err = cmd.StdoutPipe()
		}
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			return nil, "", err
		}
		wait = cmd.Wait
		abort = func() { cmd.Process.Kill(); go cmd.Wait() }
	}
	release := func() { stdin.Close(); wait() }
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		switch {
		case line == "held" || strings.HasPrefix(line, "held "):
			return release, line, nil
		case line == "busy":
			release()
			return nil, "", errBusy
		case line == "noflock":
			release()
			return nil, "", errNoFlock
		}
		release()
		return nil, "", fmt.Errorf("taking a lock on the node: %q", line)
	case <-ctx.Done():
		stdin.Close()
		abort()
		return nil, "", context.Cause(ctx)
	}
}

// leases are the run's own leases, one per session, taken once.
type leases struct {
	mu   sync.Mutex
	held map[*conn.Session]*leaseEntry
	// reaping serializes this run's clean-ups after one dead run: nodes
	// that share a home (the lab's, or two services of one user) share
	// the dead run's lock file, and while the clean-up on one node holds
	// it, the other's would find it held and take the dead run for alive.
	reaping sync.Map // run id -> *sync.Mutex
}

// reapLock returns the mutex of this run's clean-ups after run.
func (l *leases) reapLock(run string) *sync.Mutex {
	m, _ := l.reaping.LoadOrStore(run, &sync.Mutex{})
	return m.(*sync.Mutex)
}

type leaseEntry struct {
	once    sync.Once
	err     error
	release func()
	reaped  sync.Once
}

// claim takes the run's lease on the node of s (once per session) and then
// cleans up after the dead runs there (once too). Failing to take the
// lease fails the job there (the node's fault): building without it would
// let another run take this run's builds for a dead run's.
func (r *Runner) claim(ctx context.Context, s *conn.Session, client *podman.Client, kind node.Kind) error {
	e := r.lease(ctx, s)
	if e.err == nil && e.release != nil && kind.Stop != record.StopNone {
		e.reaped.Do(func() { r.reap(ctx, s, client, kind) })
	}
	return e.err
}

// lease takes the run's lease on the node of s, once per session; it needs
// nothing but the node's shell, so Preconnect takes it before the plan (and
// the node's record) has arrived. A node without a shell or flock has no
// leases: farm neither marks its runs alive there nor cleans up after
// others.
func (r *Runner) lease(ctx context.Context, s *conn.Session) *leaseEntry {
	r.leases.mu.Lock()
	e, ok := r.leases.held[s]
	if !ok {
		e = &leaseEntry{}
		r.leases.held[s] = e
	}
	r.leases.mu.Unlock()
	e.once.Do(func() {
		if !s.HasShell() {
			return
		}
		release, err := hold(ctx, s, holdScript(r.runID, true))
		switch {
		case errors.Is(err, errNoFlock):
			r.cfg.Log.Debug("no flock on the node: no lease, no clean-up after dead runs", "node", s.Target.Name)
		case err != nil:
			e.err = fmt.Errorf("taking this run's lease on %s: %w", s.Target.Name, err)
		default:
			e.release = release
		}
	})
	return e
}

// releaseLeases ends the run's leases (Runner.Close).
func (r *Runner) releaseLeases() {
	r.leases.mu.Lock()
	defer r.leases.mu.Unlock()
	for _, e := range r.leases.held {
		if e.release != nil {
			e.release()
		}
	}
}

// leftoversScript lists what runs left on the node: "RUN CONTAINER" for
// each working container of a farm job (found by the job's host entry in
// its buildah.json under the storage's graph root), "RUN tmp DIR" for each
// temporary directory of podman's the run left (tmpfiles.go: in tmpDirs, or
// the TMPDIR of the service serving socket), "RUN -" for each lease file.
// Every run pays for it before its first build on a node, so it forks a
// fixed few processes, not some per container (a grep, a head and a cut
// each took 0.3 s for 8 containers on a loaded lab node).
func leftoversScript(graphRoot string, tmpDirs []string, socket string) string {
	return fmt.Sprintf(`set -- %s/*-containers/*/userdata/buildah.json
[ -f "$1" ] && grep -H -o 'farm-[0-9a-f]\{20\}\.invalid' -- "$@" |
	sed -n 's|^.*/\([^/]*\)/userdata/buildah\.json:farm-\([0-9a-f]\{12\}\)[0-9a-f]\{8\}\.invalid$|\2 \1|p'
for f in %s/*.lock; do
	[ -f "$f" ] || continue
	run=${f##*/}
	echo "${run%%.lock} -"
done
`, shellQuote(graphRoot), leaseDir) + tmpLeftoversScript(tmpDirs, socket) + "exit 0\n"
}

var runIDPattern = regexp.MustCompile(`^[0-9a-f]{12}$`)

// leftovers are what one run left on a node.
type leftovers struct {
	ctrs []string // working containers
	tmp  []string // podman's temporary directories
}

// parseLeftovers reads leftoversScript's output: what each run but own
// left.
func parseLeftovers(out string, own string) map[string]*leftovers {
	runs := map[string]*leftovers{}
	for _, line := range strings.Split(out, "\n") {
		run, what, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !runIDPattern.MatchString(run) || run == own {
			continue
		}
		l := runs[run]
		if l == nil {
			l = &leftovers{}
			runs[run] = l
		}
		if dir, ok := strings.CutPrefix(what, "tmp "); ok {
			if !slices.Contains(l.tmp, dir) { // podman 4's upload has two marks
				l.tmp = append(l.tmp, dir)
			}
		} else if what != "-" && !slices.Contains(l.ctrs, what) {
			l.ctrs = append(l.ctrs, what)
		}
	}
	return runs
}

// reap cleans up after the dead runs on the node: for each run that left
// something there and holds no lease, under that run's lock: its RUN steps
// still running are killed, its working containers removed, its lock file
// removed. A run that holds its lease is alive and left alone. Failures are
// warnings: the build goes on.
func (r *Runner) reap(ctx context.Context, s *conn.Session, client *podman.Client, kind node.Kind) {
	began := time.Now()
	graphRoot := kind.GraphRoot
	if graphRoot == "" { // a record from an older farm-nodes
		info, err := node.ReadInfo(ctx, client)
		if err != nil {
			r.cfg.Log.Warn("cleaning up after dead runs", "node", s.Target.Name, "error", err)
			return
		}
		graphRoot = info.Store.GraphRoot
	}
	out, err := s.Run(ctx, leftoversScript(graphRoot, r.tmpDirs, node.SocketPath(s.Target.URI)))
	if err != nil {
		r.cfg.Log.Warn("cleaning up after dead runs", "node", s.Target.Name, "error", err)
		return
	}
	others := parseLeftovers(string(out), r.runID)
	defer func() {
		r.cfg.Log.Debug("looked for dead runs' leftovers", "node", s.Target.Name, "other runs", len(others), "took", time.Since(began).Round(time.Millisecond))
	}()
	for run, left := range others {
		r.reapIfDead(ctx, s, client, kind, run, left)
	}
}

// reapIfDead cleans up after run on the node if it is dead there: if its
// lock can be taken.
func (r *Runner) reapIfDead(ctx context.Context, s *conn.Session, client *podman.Client, kind node.Kind, run string, left *leftovers) {
	m := r.leases.reapLock(run)
	m.Lock()
	defer m.Unlock()
	release, err := hold(ctx, s, holdScript(run, false))
	if errors.Is(err, errBusy) {
		return
	}
	if err != nil {
		r.cfg.Log.Warn("cleaning up after a dead run", "node", s.Target.Name, "run", run, "error", err)
		return
	}
	r.reapRun(s, client, kind, run, left)
	release()
}

// reapRun removes what the dead run left on the node; the caller holds
// the run's lock.
func (r *Runner) reapRun(s *conn.Session, client *podman.Client, kind node.Kind, run string, left *leftovers) {
	ctrs := left.ctrs
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A run that left only its lock file here has no step here (a step
	// has a working container), and its lock may be one being taken right
	// now (made, not yet locked): then only the file goes, never a process
	// (nodes that share a process table, as the lab's do, would otherwise
	// let this reach a live run's steps on another node).
	// The temporary directories go first: a RUN step's bundle names its
	// job only until the step ends (its runtime empties it then).
	removed, err := removeTmp(ctx, s, run, left.tmp)
	if err != nil {
		r.cfg.Log.Warn("removing a dead run's temporary files", "node", s.Target.Name, "run", run, "error", err)
	}
	killed := ""
	if len(ctrs) > 0 {
		if killed, err = r.stop(ctx, s, "farm-"+run, kind, true); err != nil {
			r.cfg.Log.Warn("stopping a dead run's builds", "node", s.Target.Name, "run", run, "error", err)
		}
	}
	for _, c := range ctrs {
		resp, err := client.Do(ctx, nil, http.MethodDelete, "/containers/%s", url.Values{"force": {"true"}}, nil, c)
		if err == nil {
			err = resp.Process(nil)
			resp.Body.Close()
		}
		var gone *errorhandling.ErrorModel
		if errors.As(err, &gone) && gone.ResponseCode == http.StatusNotFound {
			continue // its build ended with the step, and removed it
		}
		if err != nil {
			r.cfg.Log.Warn("removing a dead run's working container", "node", s.Target.Name, "run", run, "container", c[:12], "error", err)
		}
	}
	r.cfg.Log.Info("cleaned up after a dead run", "node", s.Target.Name, "run", run, "working containers", len(ctrs), "stopped", killed, "temporary directories", removed)
}
