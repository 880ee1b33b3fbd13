//go:build lab

package lab

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/transfer"
)

// lab-1's podman service runs in this machine's network namespace, so a
// listener on this machine's 127.0.0.1 is one on the node's loopback.

// TestRunStepCannotReachNodeLoopback: a RUN step gets podman build's private
// network: it cannot reach a service on the node's 127.0.0.1, unless the
// build asks for --network host.
func TestRunStepCannotReachNodeLoopback(t *testing.T) {
	nonce := relNonce()
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "REACHED-%s\n", nonce)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	dir := relContext(t, map[string]string{"Containerfile": "FROM localhost/busybox:amd64\nARG PORT\n" +
		// busybox's nc: its static wget crashes in the host's namespace.
		`RUN if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 127.0.0.1 $PORT | grep REACHED; then echo reached; else echo blocked; fi` + "\n"})
	plan := onePlan(t, "lab-1", "linux/amd64")
	tag := "localhost/farm-test/isolation:" + nonce
	t.Cleanup(func() {
		relRemoveOnNodes(t, tag+"-linux-amd64")
		relRemoveLocal(t, tag+"-linux-amd64")
	})
	for _, tc := range []struct {
		args    string
		reached bool
	}{{"", false}, {"--network private", false}, {"--network host", true}} {
		before := hits.Load()
		r := run(t, nil, fmt.Sprintf("farm-build -t %s --no-cache --progress plain --build-arg PORT=%s %s %s < %s", tag, port, tc.args, dir, plan))
		if r.code != 0 {
			t.Fatalf("%q: exit %d", tc.args, r.code)
		}
		got := strings.Contains(r.stderr, "REACHED-"+nonce) && hits.Load() > before
		if got != tc.reached || strings.Contains(r.stderr, "] blocked") == tc.reached {
			t.Errorf("%q: reached the node's 127.0.0.1:%s = %v (%d requests), want %v", tc.args, port, got, hits.Load()-before, tc.reached)
		}
	}
}

// TestRunStepCannotReachTheTransferForward: while one job's image comes
// back through the transfer registry's forward on the node's 127.0.0.1, a
// RUN step of another job on the same node tries that port, and fails.
// The test watches the forward from outside to know the probe overlapped.
func TestRunStepCannotReachTheTransferForward(t *testing.T) {
	nonce := relNonce()
	ports := transfer.StablePorts("lab-1/linux/amd64")
	var list []string
	for _, p := range ports {
		list = append(list, strconv.Itoa(p))
	}
	dir := relContext(t, map[string]string{"Containerfile": "ARG TARGETARCH\nFROM localhost/busybox:$TARGETARCH\nARG TARGETARCH\nARG PORTS\n" +
		`RUN if [ "$TARGETARCH" = arm64 ]; then echo probe-start $(date +%s); end=$(( $(date +%s) + 75 )); ` +
		`while [ $(date +%s) -lt $end ]; do for p in $PORTS; do printf 'GET /v2/ HTTP/1.0\r\n\r\n' | nc -w 1 127.0.0.1 $p 2>/dev/null | grep -q HTTP && echo REACHED-FORWARD-$p; done; sleep 0.5; done; ` +
		`echo probe-end $(date +%s); fi` + "\n"})
	plan := onePlan(t, "lab-1", "linux/amd64,linux/arm64")
	tag := "localhost/farm-test/forward:" + nonce
	t.Cleanup(func() {
		relRemoveOnNodes(t, tag+"-linux-amd64", tag+"-linux-arm64")
		relRemoveLocal(t, tag+"-linux-amd64", tag+"-linux-arm64")
	})
	// Watch the forward's ports from this machine (the node's namespace).
	var mu sync.Mutex
	var up []int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, p := range ports {
				if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), 100*time.Millisecond); err == nil {
					c.Close()
					mu.Lock()
					up = append(up, time.Now().Unix())
					mu.Unlock()
				}
			}
		}
	}()
	r := run(t, nil, fmt.Sprintf("farm-build -t %s --no-cache --progress plain --transfer registry --build-arg PORTS=%q %s < %s", tag, strings.Join(list, " "), dir, plan))
	close(stop)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if regexp.MustCompile(`\] REACHED-FORWARD-\d+`).MatchString(r.stderr) {
		t.Errorf("a RUN step reached the transfer registry's forward")
	}
	m := regexp.MustCompile(`probe-start (\d+)[\s\S]*probe-end (\d+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatal("the arm64 probe did not run")
	}
	start, _ := strconv.ParseInt(m[1], 10, 64)
	end, _ := strconv.ParseInt(m[2], 10, 64)
	mu.Lock()
	defer mu.Unlock()
	overlap := 0
	for _, at := range up {
		if at >= start && at <= end {
			overlap++
		}
	}
	if !strings.Contains(r.stderr, "through the transfer registry") || overlap == 0 {
		t.Fatalf("the forward was not seen up while the probe ran (probe %d-%d, forward seen at %v): the test proves nothing", start, end, up)
	}
}

// TestSecretNeverLeaks: a --secret reaches the RUN step that mounts it and
// nothing else: no record, no log line (at debug level), no layer and no
// history entry of the image holds its value, and COPY . does not see the
// file it travelled in.
func TestSecretNeverLeaks(t *testing.T) {
	nonce := relNonce()
	value := "farm-secret-value-" + nonce
	secretFile := filepath.Join(t.TempDir(), "token")
	relWriteFile(t, secretFile, value+"\n")
	dir := relContext(t, map[string]string{"Containerfile": "FROM localhost/busybox:amd64\nCOPY . /ctx/\n" +
		"RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /hash && ls -a /ctx\n"})
	plan := onePlan(t, "lab-1", "linux/amd64")
	tag := "localhost/farm-test/secret:" + nonce
	t.Cleanup(func() {
		relRemoveOnNodes(t, tag+"-linux-amd64")
		relRemoveLocal(t, tag+"-linux-amd64")
	})
	r := run(t, nil, fmt.Sprintf("farm-build -t %s --no-cache --progress plain --log-level debug --secret id=tok,src=%s %s < %s", tag, secretFile, dir, plan))
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if strings.Contains(r.stdout, value) || strings.Contains(r.stderr, value) {
		t.Errorf("the secret is in a record or a log line")
	}
	if strings.Contains(r.stderr, "] podman-build-secret") {
		t.Errorf("COPY . saw the secret's file")
	}
	ref := tag + "-linux-amd64"
	out, err := exec.Command("podman", "run", "--rm", "--pull=never", ref, "cat", "/hash").Output()
	want := fmt.Sprintf("%x", sha256.Sum256([]byte(value+"\n")))
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Fatalf("the RUN step did not see the secret: %q, %v (want %s)", out, err, want)
	}
	if h := podman(t, "history", "--no-trunc", "--format", "{{.CreatedBy}} {{.Comment}}", ref); strings.Contains(h, value) {
		t.Errorf("the history holds the secret:\n%s", h)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	podman(t, "save", "--format", "docker-archive", "-o", archive, ref)
	saved, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(saved, []byte(want)) {
		t.Fatal("the saved image lacks the hash file: the search below would prove nothing")
	}
	if bytes.Contains(saved, []byte(value)) {
		t.Errorf("a layer or the config of the image holds the secret")
	}
	// A missing secret file: an error naming the id, before any build.
	r = run(t, nil, fmt.Sprintf("farm-build -t %s --secret id=tok2,src=/nonexistent/token %s < %s", tag, dir, plan))
	if r.code != 2 || !strings.Contains(r.stderr, "--secret id=tok2") || strings.Contains(r.stderr, "STEP") {
		t.Errorf("a missing secret file: exit %d, want 2 and an error naming the id", r.code)
	}
}

// onePlan plans the platforms on one node, patient with a loaded machine.
func onePlan(t *testing.T, node, platforms string) string {
	t.Helper()
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if r := run(t, nil, fmt.Sprintf("farm-nodes --node %s --timeout 60s | farm-plan --platforms %s > %s", node, platforms, plan)); r.code != 0 {
		t.Fatalf("planning %s on %s: exit %d", platforms, node, r.code)
	}
	return plan
}
