//go:build lab

package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The parity suite builds each case twice on the same node, through farm
// and with `podman --url <node> build`, and compares what a user gets: the
// image's config, annotations, history and layers, and what RUN steps see.
// FARM_PARITY_NODES picks the nodes (default lab-1); the lab's node kinds
// (lab-p5, lab-rootless) are parameters like any other.

// parityCase is a Containerfile, its context and the flags both builds get.
type parityCase struct {
	name     string
	files    map[string]string
	symlinks map[string]string
	args     []string
	fail     string // both builds fail, saying this
}

// probe prints what a RUN step sees.
const probe = `RUN exec 2>&1; echo =PROBE=; ip -o addr | awk '{print $2, $3, $4}'; cat /proc/net/route; echo hostname $(hostname); ` +
	`cat /etc/hosts /etc/resolv.conf; grep Cap /proc/self/status; ulimit -a; cat /proc/self/uid_map /proc/self/gid_map; echo =END=`

const instructions = `FROM localhost/busybox:amd64
ENV GREETING=hello PATH=/usr/local/bin:/bin
LABEL org.example.kind=parity
USER 1000:1000
WORKDIR /work
EXPOSE 8080/tcp 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
` + probe + "\n"

func parityCases(secretFile string) []parityCase {
	return []parityCase{
		{name: "instructions", files: map[string]string{"Containerfile": instructions},
			args: []string{"--label", "org.example.run=1", "--annotation", "org.example.note=x", "--env", "EXTRA=1"}},
		{name: "multi-stage-target", files: map[string]string{"Containerfile": `FROM localhost/busybox:amd64 AS base
ARG TARGETPLATFORM
ARG TARGETARCH
RUN echo "$TARGETPLATFORM $TARGETARCH" > /platform
LABEL arch=$TARGETARCH
FROM base AS test
RUN cat /platform
` + probe + `
FROM base AS release
RUN echo never
`}, args: []string{"--target", "test"}},
		{name: "secret", files: map[string]string{"Containerfile": "FROM localhost/busybox:amd64\nRUN --mount=type=secret,id=tok sha256sum /run/secrets/tok\n" + probe + "\n"},
			args: []string{"--secret", "id=tok,src=" + secretFile}},
		{name: "network-none", files: map[string]string{"Containerfile": "FROM localhost/busybox:amd64\n" + probe + "\n"},
			args: []string{"--network", "none"}},
		{name: "copy-symlinks", files: map[string]string{"Containerfile": "FROM localhost/busybox:amd64\nCOPY . /ctx/\nRUN ls -l /ctx | awk '{print $1, $9, $10, $11}'\n", "target.txt": "t\n"},
			symlinks: map[string]string{"in": "target.txt", "abs": "/etc/hostname", "sub/up": "../target.txt", "dangling": "nothing"}},
		// A symlink out of the context with ../..: sent as podman-remote
		// sends it, and the node's podman refuses it the same way.
		{name: "symlink-escape", files: map[string]string{"Containerfile": "FROM localhost/busybox:amd64\nCOPY . /ctx/\n"},
			symlinks: map[string]string{"up": "../../outside"}, fail: `invalid symlink`},
		{name: "ignore-negations", files: map[string]string{
			"Containerfile":    "FROM localhost/busybox:amd64\nCOPY . /ctx/\nRUN find /ctx | sort\n",
			".containerignore": "*.log\n!keep.log\nsub/*\n!sub/a\n",
			"drop.log":         "x", "keep.log": "k", "sub/a": "a", "sub/b": "b", "top": "t"}},
	}
}

// parityNode is a node and how podman reaches it.
type parityNode struct{ name, url, identity string }

func parityNodes(t *testing.T) []parityNode {
	names := strings.Fields(os.Getenv("FARM_PARITY_NODES"))
	if len(names) == 0 {
		names = []string{"lab-1"}
	}
	key := labVar(t, "FARM_LAB_KEY")
	var nodes []parityNode
	for _, n := range names {
		v := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(n, "lab-"), "-", "_"))
		if sock, ok := labVars["FARM_LAB_"+v+"_SOCK"]; ok {
			nodes = append(nodes, parityNode{n, "unix://" + sock, ""})
			continue
		}
		nodes = append(nodes, parityNode{n, labVar(t, "FARM_LAB_"+v+"_URI"), key})
	}
	return nodes
}

// podmanOn runs podman against the node.
func (n parityNode) podman(t *testing.T, args ...string) result {
	t.Helper()
	global := "--url " + n.url
	if n.identity != "" {
		global += " --identity " + n.identity
	}
	return run(t, nil, "podman "+global+" "+shellJoin(args))
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// observed is what the suite compares.
type observed struct {
	Config      map[string]any
	Annotations map[string]any
	History     []string
	Layers      int
	Run         string
}

var (
	ipv4       = regexp.MustCompile(`\b(\d+\.\d+)\.\d+\.\d+/`)
	ipv4h      = regexp.MustCompile(`(?m)^(\d+\.\d+)\.\d+\.\d+(\s)`)
	ipv6       = regexp.MustCompile(`fe80::[0-9a-f:]+`)
	ctrID      = regexp.MustCompile(`\b[0-9a-f]{12}\b`)
	imageID    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	anyImageID = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	jobMarker  = regexp.MustCompile(`\sfarm-[0-9a-z]+\.invalid$`)
)

// runOutput is what RUN steps printed, with what differs between any two
// builds on one node (the container's id as hostname, its addresses)
// masked.
func runOutput(lines []string) string {
	var keep []string
	for _, l := range lines {
		// farm's one documented difference in what RUN sees: the host
		// entry that marks the job's steps for stopping them
		// (docs/farm-build.md, "Differences from podman build").
		if jobMarker.MatchString(l) {
			continue
		}
		// COMMIT names the image in podman's build and not in farm's
		// (docs/farm-build.md, "Differences from podman build").
		if strings.HasPrefix(l, "STEP ") || strings.Contains(l, "COMMIT") || strings.HasPrefix(l, "--> ") ||
			strings.HasPrefix(l, "Successfully") || strings.Contains(l, "[Warning]") || imageID.MatchString(l) {
			continue
		}
		l = ipv4.ReplaceAllString(l, "$1.x.x/")
		l = ipv4h.ReplaceAllString(l, "$1.x.x$2")
		l = ipv6.ReplaceAllString(l, "fe80::x")
		l = anyImageID.ReplaceAllString(l, "<image>") // a stage's image in FROM
		l = ctrID.ReplaceAllString(l, "<id>")
		keep = append(keep, strings.TrimRight(l, " "))
	}
	return strings.Join(keep, "\n")
}

func (n parityNode) inspect(t *testing.T, ref string, out []string) observed {
	t.Helper()
	r := n.podman(t, "image", "inspect", ref)
	var imgs []struct {
		Config      map[string]any
		Annotations map[string]any
		RootFS      struct{ Layers []string }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &imgs) != nil || len(imgs) != 1 {
		t.Fatalf("inspecting %s on %s: exit %d %q", ref, n.name, r.code, r.stdout)
	}
	h := n.podman(t, "image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref)
	return observed{Config: imgs[0].Config, Annotations: imgs[0].Annotations, History: strings.Split(strings.TrimSpace(h.stdout), "\n"),
		Layers: len(imgs[0].RootFS.Layers), Run: runOutput(out)}
}

// configKeys are the parts of the config the issue names.
var configKeys = []string{"Env", "Labels", "Cmd", "Entrypoint", "User", "WorkingDir", "ExposedPorts", "Volumes", "StopSignal"}

func compareObserved(t *testing.T, farm, pod observed) {
	t.Helper()
	for _, k := range configKeys {
		if !reflect.DeepEqual(farm.Config[k], pod.Config[k]) {
			t.Errorf("config %s: farm %v, podman %v", k, farm.Config[k], pod.Config[k])
		}
	}
	// The base image's digest is compared by name only: other tests
	// re-import the lab's base images while this suite runs.
	const baseDigest = "org.opencontainers.image.base.digest"
	if (farm.Annotations[baseDigest] == nil) != (pod.Annotations[baseDigest] == nil) {
		t.Errorf("annotation %s: farm %v, podman %v", baseDigest, farm.Annotations[baseDigest], pod.Annotations[baseDigest])
	}
	delete(farm.Annotations, baseDigest)
	delete(pod.Annotations, baseDigest)
	if !reflect.DeepEqual(farm.Annotations, pod.Annotations) {
		t.Errorf("annotations: farm %v, podman %v", farm.Annotations, pod.Annotations)
	}
	if !reflect.DeepEqual(farm.History, pod.History) {
		t.Errorf("history created_by:\nfarm   %q\npodman %q", farm.History, pod.History)
	}
	if farm.Layers != pod.Layers {
		t.Errorf("layers: farm %d, podman %d", farm.Layers, pod.Layers)
	}
	if farm.Run != pod.Run {
		t.Errorf("what RUN steps saw differs:\n--- farm\n%s\n--- podman\n%s", farm.Run, pod.Run)
	}
}

func TestParityWithPodmanBuild(t *testing.T) {
	repo(t)
	nonce := relNonce()
	secretFile := filepath.Join(t.TempDir(), "token")
	relWriteFile(t, secretFile, "parity-secret-"+nonce+"\n")
	for _, n := range parityNodes(t) {
		t.Run(n.name, func(t *testing.T) {
			plan := onePlan(t, n.name, "linux/amd64")
			for _, c := range parityCases(secretFile) {
				t.Run(c.name, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "a", "b", "ctx")
					for name, body := range c.files {
						os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
						relWriteFile(t, filepath.Join(dir, name), body)
					}
					for name, target := range c.symlinks {
						os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
						if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
							t.Fatal(err)
						}
					}
					farmTag := "localhost/parity/farm-" + c.name + ":" + nonce
					podTag := "localhost/parity/podman-" + c.name + ":" + nonce
					t.Cleanup(func() {
						n.podman(t, "rmi", "-f", farmTag+"-linux-amd64", podTag)
						exec.Command("podman", "rmi", "-f", farmTag+"-linux-amd64").Run()
					})
					args := append([]string{"--no-cache"}, c.args...)
					fr := run(t, nil, fmt.Sprintf("farm-build -t %s --progress plain %s %s < %s", farmTag, shellJoin(args), dir, plan))
					if c.fail != "" {
						pr := n.podman(t, append(append([]string{"build", "--platform", "linux/amd64", "-t", podTag}, args...), dir)...)
						if fr.code == 0 || pr.code == 0 || !strings.Contains(fr.stdout, c.fail) || !strings.Contains(pr.stderr, c.fail) {
							t.Errorf("both builds should fail with %q: farm exit %d %s, podman exit %d %s", c.fail, fr.code, fr.stdout, pr.code, pr.stderr)
						}
						return
					}
					if fr.code != 0 {
						t.Fatalf("farm-build: exit %d", fr.code)
					}
					var farmOut []string
					prefix := "[linux/amd64@" + n.name + "] "
					for _, l := range strings.Split(fr.stderr, "\n") {
						if strings.HasPrefix(l, prefix) && !strings.Contains(l, "pulling back") && !strings.HasPrefix(l, prefix+"done: ") {
							farmOut = append(farmOut, strings.TrimPrefix(l, prefix))
						}
					}
					pr := n.podman(t, append(append([]string{"build", "--platform", "linux/amd64", "-t", podTag}, args...), dir)...)
					if pr.code != 0 {
						t.Fatalf("podman build: exit %d\n%s", pr.code, pr.stdout)
					}
					farm := n.inspect(t, farmTag+"-linux-amd64", farmOut)
					pod := n.inspect(t, podTag, strings.Split(strings.TrimSpace(pr.stdout), "\n"))
					if c.name == "multi-stage-target" && !strings.Contains(farm.Run, "linux/amd64 amd64") {
						t.Errorf("TARGETPLATFORM/TARGETARCH not seen by RUN:\n%s", farm.Run)
					}
					compareObserved(t, farm, pod)
				})
			}
		})
	}
}
