//go:build lab

package lab

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The farm-wide layer cache (--layer-cache farm): a build on one node
// pushes each step's result to the transfer registry (podman build
// --cache-to), and a rebuild that lands on another node pulls the steps from
// there (--cache-from) instead of running them again.
func TestCacheRebuildOnAnotherNodeComesFromTheFarmCache(t *testing.T) {
	base := sharedBase(t, "lab-1", "lab-2")
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()} // this test's own transfer registry cache
	// The RUN leaves a mark no rerun can repeat: the time it ran, in ns.
	dir := relContext(t, map[string]string{
		"Containerfile": "FROM " + base + "\nCOPY nonce /nonce\nRUN date +%s%N > /built-at && sleep 3\nRUN cat /nonce /built-at > /both\n",
		"nonce":         relNonce(),
	})
	tag := "localhost/farm-test/layer-cache:1"
	removeLocal(t, tag+"-linux-amd64")
	t.Cleanup(func() { relRemoveOnNodes(t, tag+"-linux-amd64") })

	first, r1 := buildImage(t, env, pinnedJob(t, "linux/amd64", "lab-1"), tag, dir, "--layer-cache", "farm")
	second, r2 := buildImage(t, env, pinnedJob(t, "linux/amd64", "lab-2"), tag, dir, "--layer-cache", "farm")
	if first.Node != "lab-1" || second.Node != "lab-2" {
		t.Fatalf("built on %s, then %s; want lab-1, then lab-2", first.Node, second.Node)
	}
	if n := strings.Count(r1.stderr, "Pushing cache 127.0.0.1:"); n < 3 {
		t.Errorf("the first build pushed %d steps to the farm cache; want 3 (COPY, RUN, RUN)", n)
	}
	if n := strings.Count(r2.stderr, "Cache pulled from remote 127.0.0.1:"); n != 3 {
		t.Errorf("the rebuild on lab-2 pulled %d steps from the farm cache; want all 3", n)
	}
	// The very image lab-1 built: the RUN steps did not run again on lab-2
	// (their time stamp would have given new layers).
	if second.ID != first.ID {
		t.Errorf("the rebuild on lab-2 made image %s, not lab-1's %s: steps ran again", second.ID, first.ID)
	}
	lab2 := "unix://" + labVar(t, "FARM_LAB_2_SOCK")
	if id := podman(t, "--url", lab2, "image", "inspect", second.Ref, "--format", "{{.Id}}"); id != first.ID {
		t.Errorf("lab-2 holds %s as %s; want %s", second.Ref, id, first.ID)
	}
	// The pulled entries stay on lab-2 as its own layer cache, without the
	// farm cache's names (REPO:KEY) the pulls gave them.
	names := podman(t, "--url", lab2, "images", "--format", "{{.Repository}}:{{.Tag}}")
	for _, m := range regexp.MustCompile(`Cache pulled from remote (\S+)`).FindAllStringSubmatch(r2.stderr, -1) {
		if strings.Contains(names, m[1]) {
			t.Errorf("lab-2 still names an image %s", m[1])
		}
	}
}

// sharedBase gives nodes one base image, as they have when their FROM image
// comes from a registry: the lab imports localhost/busybox into every node
// on its own, and an import's time stamp makes a different image each time
// (buildah's cache keys hash the base's history, time stamps included).
func sharedBase(t *testing.T, nodes ...string) string {
	t.Helper()
	reg := labVar(t, "FARM_LAB_REGISTRY")
	name := reg + "/farm-test/cache-base:amd64"
	first := "unix://" + labVar(t, "FARM_LAB_1_SOCK")
	podman(t, "--url", first, "tag", "localhost/busybox:amd64", name)
	podman(t, "--url", first, "push", "--tls-verify=false", name)
	for _, n := range nodes {
		url := "unix://" + labVar(t, fmt.Sprintf("FARM_LAB_%s_SOCK", strings.TrimPrefix(n, "lab-")))
		if out, err := exec.Command("podman", "--url", url, "pull", "--tls-verify=false", name).CombinedOutput(); err != nil {
			t.Fatalf("pulling %s into %s: %v\n%s", name, n, err, out)
		}
	}
	return name
}
