//go:build conformance

package transfer

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// knownDeviations are the suite's specs that docker/distribution v2.8 (and
// so Debian's docker-registry, farm's registry before it was in-process)
// fails; distribution v3 changed these answers. None is a request podman
// makes: it uploads a blob in one stream, in order, and never resumes a
// stale upload. Every other pull and push spec must pass.
var knownDeviations = []string{
	`400 response body should contain OCI-conforming JSON message`, // an invalid manifest gets 400 with a v2 error body the suite's parser rejects
	`GET request to blob URL from prior request should yield 200 or 404`,
	`Out-of-order blob upload should return 416`,  // v2.8 accepts the chunk (202)
	`Retry previous blob chunk should return 416`, // v2.8 answers 404
	`Get on stale blob upload should return 204 with a range and location`,
}

// TestOCIConformance runs the OCI distribution-spec conformance suite (its
// pull and push workflows: what nodes and the local store do to the run
// registry) against the in-process registry. `make conformance` builds the
// suite's test binary from test/conformance (a pinned version) and names it
// in FARM_CONFORMANCE_TEST.
func TestOCIConformance(t *testing.T) {
	bin := os.Getenv("FARM_CONFORMANCE_TEST")
	if bin == "" {
		t.Fatal("FARM_CONFORMANCE_TEST is not set: run `make conformance`, which builds the suite and sets it")
	}
	r, err := StartRunRegistry(context.Background(), RunRegistryOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(bin, "-ginkgo.no-color", "-ginkgo.skip="+strings.Join(knownDeviations, "|"))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"OCI_ROOT_URL=http://"+r.Addr(),
		"OCI_NAMESPACE="+RepoPrefix+"/conformance",
		"OCI_CROSSMOUNT_NAMESPACE="+RepoPrefix+"/conformance-mount",
		"OCI_TEST_PULL=1",
		"OCI_TEST_PUSH=1",
		"OCI_HIDE_SKIPPED_WORKFLOWS=1",
		"OCI_REPORT_DIR="+t.TempDir(),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("conformance suite against %s: %v\n%s", r.Addr(), err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	t.Logf("conformance suite passed:\n%s", strings.Join(lines, "\n"))
}
