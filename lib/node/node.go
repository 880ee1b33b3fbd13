// Package node turns a connection into a node record: what the node's
// podman service says about itself (platform, cpus, memory, version) and
// which foreign platforms it can build by emulation.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/record"
)

// Options for Probe.
type Options struct {
	// Timeout bounds each node's whole probe; a node that does not answer
	// in time becomes a record with Error set.
	Timeout time.Duration
	SSH     conn.SSHOptions
	// Declared adds emulated platforms per node name, for what detection
	// cannot see (like buildx's --platform on a node).
	Declared map[string][]string
	// Cache keeps what each node's podman info said (off when its TTL is
	// 0).
	Cache InfoCache
	// Log gets debug lines (nil: none).
	Log *slog.Logger
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Probe asks every target at once and returns one record per target, in the
// targets' order. It never fails as a whole: an unreachable node is a record
// with Error set.
func Probe(ctx context.Context, targets []conn.Target, opts Options) []record.Node {
	out := make([]record.Node, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = probeOne(ctx, t, opts)
		}()
	}
	wg.Wait()
	return out
}

func probeOne(ctx context.Context, t conn.Target, opts Options) record.Node {
	rec := record.Node{Name: t.Name, URI: record.RedactURI(t.URI), Identity: t.Identity,
		Native: []string{}, Emulated: []string{}}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, opts.Timeout,
			fmt.Errorf("no answer within %s (--timeout); is the node up? try: podman --connection %s info, or give a slow node a longer --timeout", opts.Timeout, t.Name))
		defer cancel()
	}
	// Everything below honours ctx, but a library call that does not would
	// still hang the whole stage; the goroutine makes the timeout absolute.
	done := make(chan record.Node, 1)
	go func() { done <- probe(ctx, t, rec, opts) }()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		rec.Error = fmt.Sprintf("probing %s: %v", t.Name, context.Cause(ctx))
		// The probe honours ctx and closes its session on the way out:
		// wait for that (boundedly), or an interrupted farm-nodes exits
		// first and leaves the tunnel's socket in /tmp/farm-tunnel-*.
		select {
		case <-done:
		case <-time.After(closeGrace):
		}
		return rec
	}
}

// closeGrace bounds how long a probe that was given up may take to close
// its session.
const closeGrace = 2 * time.Second

func probe(ctx context.Context, t conn.Target, rec record.Node, opts Options) record.Node {
	fail := func(err error) record.Node {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		rec.Error = fmt.Sprintf("probing %s: %v", t.Name, err)
		return rec
	}
	s, err := conn.Open(ctx, t, opts.SSH)
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	// Read binfmt_misc and the load while podman computes its info (0.2 s
	// on podman 4.3): it is needed unless the service reports emulation
	// itself, and doing both at once keeps every node's probe, and so the
	// whole pipeline's start, shorter.
	cached, _ := opts.Cache.load(t.URI, time.Now())
	graphRoot := ""
	if cached != nil {
		graphRoot = cached.Store.GraphRoot
	}
	scriptDone := make(chan scriptResult, 1)
	go func() {
		out, err := s.Run(ctx, probeScript(SocketPath(t.URI), graphRoot))
		scriptDone <- scriptResult{out, err}
	}()
	client, err := s.Connect(ctx)
	if err != nil {
		return fail(explainConnect(err))
	}
	info, free, b, err := infoOf(ctx, t, client, cached, scriptDone, opts)
	if err != nil {
		return fail(fmt.Errorf("%w; is the podman service healthy? try: podman --connection %s info", err, t.Name))
	}
	rec.Podman = info.Version.Version
	if err := info.Check(); err != nil {
		return fail(err)
	}
	native, err := platform.FromParts(info.Host.OS, info.Host.Arch, info.Host.Variant)
	if err != nil {
		return fail(fmt.Errorf("node reports an unknown platform: %w; see podman --connection %s info, and please report it as a farm bug", err, t.Name))
	}
	rec.Native = []string{native.String()}
	rec.CPUs = info.Host.CPUs
	rec.Memory = info.Host.MemTotal
	KindOf(info, s.HasShell()).Apply(&rec)

	emulated := map[string]bool{}
	for _, p := range info.Host.EmulatedArchitectures {
		if c, err := platform.Canonical(p); err == nil {
			emulated[c] = true
		}
	}
	switch {
	case b.err == nil:
		if len(info.Host.EmulatedArchitectures) == 0 {
			for _, p := range ParseBinfmt(string(b.out)) {
				emulated[p] = true
			}
		}
		rec.Load = ParseLoad(string(b.out), free)
	case b.err != conn.ErrNoShell && len(info.Host.EmulatedArchitectures) == 0:
		return fail(fmt.Errorf("reading binfmt_misc registrations: %w; check that the node's shell can read them (cat /proc/sys/fs/binfmt_misc/status)", b.err))
	}
	for _, p := range opts.Declared[t.Name] {
		c, err := platform.Canonical(p)
		if err != nil {
			return fail(fmt.Errorf("declared platform: %w; fix --emulate %s=PLATFORMS", err, t.Name))
		}
		emulated[c] = true
	}
	delete(emulated, native.String())
	rec.Emulated = append(rec.Emulated, slices.Sorted(maps.Keys(emulated))...)
	return rec
}

// scriptResult is what probeScript printed.
type scriptResult struct {
	out []byte
	err error
}

// infoOf returns the node's info, the free bytes of its storage, and the
// probe script's result: the cached info when the service answered its
// ping with the cached version and the script read the free space of the
// cached storage path, else podman's info, which it then caches.
func infoOf(ctx context.Context, t conn.Target, client *podman.Client, cached *Info, script <-chan scriptResult, opts Options) (*Info, int64, scriptResult, error) {
	if cached != nil && client.Version() != nil && client.Version().String() == strings.TrimPrefix(cached.Version.Version, "v") {
		b := <-script
		if free, ok := parseFree(string(b.out)); b.err == nil && ok {
			// What the service would say it emulates comes from the
			// binfmt_misc registrations the script read just now.
			live := *cached
			live.Host.EmulatedArchitectures = nil
			opts.log().Debug("podman info from the cache", "node", t.Name, "podman", cached.Version.Version)
			return &live, free, b, nil
		}
		script = replay(b)
	}
	info, err := ReadInfo(ctx, client)
	if err != nil {
		return nil, 0, scriptResult{}, err
	}
	opts.Cache.store(t.URI, info, time.Now())
	return info, info.Store.free(), <-script, nil
}

// replay is a channel that gives b again.
func replay(b scriptResult) <-chan scriptResult {
	c := make(chan scriptResult, 1)
	c <- b
	return c
}

// Info is the part of GET /info farm reads. It is decoded here rather than
// with system.Info because podman >= 5.6 adds host.emulatedArchitectures,
// which these bindings' types do not know.
type Info struct {
	Host struct {
		Security struct {
			Rootless bool `json:"rootless"`
		} `json:"security"`
		IDMappings struct {
			UIDMap []IDMap `json:"uidmap"`
		} `json:"idMappings"`
		CgroupManager         string   `json:"cgroupManager"`
		CgroupVersion         string   `json:"cgroupVersion"`
		OS                    string   `json:"os"`
		Arch                  string   `json:"arch"`
		Variant               string   `json:"variant"`
		CPUs                  int      `json:"cpus"`
		MemTotal              int64    `json:"memTotal"`
		EmulatedArchitectures []string `json:"emulatedArchitectures"`
	} `json:"host"`
	Store   Store `json:"store"`
	Version struct {
		Version string `json:"Version"`
	} `json:"version"`
}

// Store is the part of GET /info's store farm reads: where the image
// storage is, the size of its filesystem and how much of it is used.
type Store struct {
	GraphRoot          string `json:"graphRoot"`
	GraphRootAllocated uint64 `json:"graphRootAllocated"`
	GraphRootUsed      uint64 `json:"graphRootUsed"`
}

func (s Store) free() int64 {
	if s.GraphRootUsed >= s.GraphRootAllocated {
		return 0
	}
	return int64(s.GraphRootAllocated - s.GraphRootUsed)
}

// IDMap is one range of a user namespace's id mapping.
type IDMap struct {
	ContainerID int `json:"container_id"`
	HostID      int `json:"host_id"`
	Size        int `json:"size"`
}

// ReadInfo asks a podman service about itself.
func ReadInfo(ctx context.Context, c *podman.Client) (*Info, error) {
	resp, err := c.Do(ctx, nil, http.MethodGet, "/info", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("GET /info: %w", err)
	}
	defer resp.Body.Close()
	var i Info
	if err := resp.Process(&i); err != nil {
		// Name the version the service says it speaks, if any: an
		// answer farm cannot read is most often from another version.
		api := resp.Header.Get("Libpod-API-Version")
		if api == "" {
			api = "none given"
		}
		return nil, fmt.Errorf("GET /info: unexpected answer (HTTP %d, Libpod-API-Version %s): %w", resp.StatusCode, api, err)
	}
	return &i, nil
}

// probeScript prints every enabled binfmt_misc registration as "name
// interpreter" lines (none when binfmt_misc is off), then the node's load:
// "@loadavg A" (the 1-minute load average), "@free BYTES", the free space
// of the filesystem of graphRoot when one is given (as podman's info
// counts it: free blocks, root's reserve included), "@claims N", the farm jobs that
// hold a build claim on the service listening on socket (claims.go), and
// "@builds N", the RUN steps that service runs now. Those are the
// buildah-oci-runtime processes whose parent holds the socket (found
// through /proc/net/unix and the holders' fds), so another service on the
// same machine (the lab's nodes share one) is not counted. It takes about
// 0.1 s on an idle lab node, while podman computes its info.
func probeScript(socket, graphRoot string) string {
	return "sock=" + shellQuote(socket) + "\ngraphroot=" + shellQuote(graphRoot) + "\n" + `d=/proc/sys/fs/binfmt_misc
st=""
{ read -r st < "$d/status"; } 2>/dev/null
if [ "$st" = enabled ]; then
	for f in "$d"/*; do
		case "${f##*/}" in register|status) continue;; esac
		# builtins only: a fork per file cost 2 s on a loaded 2-core node
		state="" interp=""
		{
			read -r state
			while read -r k v; do [ "$k" = interpreter ] && interp=$v; done
		} < "$f" 2>/dev/null
		[ "$state" = enabled ] && echo "${f##*/} $interp"
	done
fi
{ read -r avg _ < /proc/loadavg; } 2>/dev/null && echo "@loadavg $avg"
if [ -n "$graphroot" ]; then
	# blocks free, block size
	set -- $(stat -f -c '%f %s' -- "$graphroot" 2>/dev/null)
	[ $# -eq 2 ] && echo "@free $(($1 * $2))"
fi
` + countClaimsScript(ClaimDir(socket)) + `# Every socket bound to that path: after a restart the dead service's may
# still be listed (first), and only the live one has a holder.
svc=" "
while read -r _ _ _ _ _ _ ino path; do
	[ "$path" = "$sock" ] || continue
	for f in $(find /proc/[0-9]*/fd -maxdepth 1 -lname "socket:\[$ino\]" 2>/dev/null); do
		f=${f#/proc/}; svc="$svc${f%%/*} "
	done
done < /proc/net/unix
[ "$svc" = " " ] && exit 0
steps=0
for p in /proc/[0-9]*; do
	{ read -r c < "$p/comm"; } 2>/dev/null || continue
	case $c in exe|buildah-oci-run) ;; *) continue ;; esac
	case $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) in buildah-oci-runtime*) ;; *) continue ;; esac
	st=""
	{ read -r st < "$p/stat"; } 2>/dev/null
	set -- ${st##*) }
	case $svc in *" $2 "*) steps=$((steps + 1)) ;; esac
done
echo "@builds $steps"
exit 0`
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// SocketPath is the path of the podman socket a connection URI names
// (ssh://host/PATH or unix://PATH; "" for tcp://). farm-nodes and
// farm-build both name a service's build claims by it (ClaimDir), so they
// must read it alike.
func SocketPath(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "unix" && u.Scheme != "ssh") {
		return ""
	}
	return u.Path
}

// ParseLoad reads the load probeScript printed; nil when it printed none
// (its shell could not find the service's socket or read /proc). free is
// the storage's free bytes, from podman info. Builds is the larger of the
// RUN steps and the farm jobs' claims: a farm job holds its claim from
// its upload to its image's transfer, and runs one RUN step at a time.
func ParseLoad(out string, free int64) *record.Load {
	v := scriptValues(out)
	var l record.Load
	var err error
	if l.Average, err = strconv.ParseFloat(v["@loadavg"], 64); err != nil || l.Average < 0 {
		return nil
	}
	if l.Builds, err = strconv.Atoi(v["@builds"]); err != nil || l.Builds < 0 {
		return nil
	}
	if claims, err := strconv.Atoi(v["@claims"]); err == nil {
		l.Builds = max(l.Builds, claims)
	}
	l.StorageFree = free
	return &l
}

// parseFree reads the "@free BYTES" line probeScript printed.
func parseFree(out string) (int64, bool) {
	n, err := strconv.ParseInt(scriptValues(out)["@free"], 10, 64)
	return n, err == nil && n >= 0
}

// scriptValues maps the "@KEY VALUE" lines probeScript printed, the last
// of a key standing.
func scriptValues(out string) map[string]string {
	v := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if key, val, _ := strings.Cut(strings.TrimSpace(line), " "); strings.HasPrefix(key, "@") {
			v[key] = val
		}
	}
	return v
}

// qemuArch maps qemu's names for targets to platforms. arm covers both
// v6 and v7 user space.
var qemuArch = map[string][]string{
	"aarch64":     {"linux/arm64"},
	"arm":         {"linux/arm/v7", "linux/arm/v6"},
	"x86_64":      {"linux/amd64"},
	"i386":        {"linux/386"},
	"ppc64le":     {"linux/ppc64le"},
	"ppc64":       {"linux/ppc64"},
	"s390x":       {"linux/s390x"},
	"riscv64":     {"linux/riscv64"},
	"mips":        {"linux/mips"},
	"mipsel":      {"linux/mipsle"},
	"mips64":      {"linux/mips64"},
	"mips64el":    {"linux/mips64le"},
	"loongarch64": {"linux/loong64"},
}

// ParseBinfmt reads binfmtScript's output and returns the platforms the
// registered qemu interpreters can run, sorted.
func ParseBinfmt(out string) []string {
	set := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "@") { // the load's lines
			continue
		}
		names := []string{fields[0]}
		if len(fields) > 1 {
			names = append(names, path.Base(fields[1]))
		}
		for _, n := range names {
			n = strings.TrimSuffix(strings.TrimPrefix(n, "qemu-"), "-static")
			for _, p := range qemuArch[n] {
				set[p] = true
			}
		}
	}
	return append([]string{}, slices.Sorted(maps.Keys(set))...) // [], not null, when none
}
