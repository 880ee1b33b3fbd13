package dispatch

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/record"
)

// Two jobs claiming one node at once: exactly one finds it idle, whatever
// the timing; a released claim and a dead one (its holder gone, its file
// left) count for nothing and the dead one's file goes.
func TestSlotScriptClaimsRace(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	s := localShell(t)
	ctx := context.Background()
	dir := node.ClaimDir("/run/podman/podman.sock")
	for round := 0; round < 10; round++ {
		var wg sync.WaitGroup
		lines := make([]string, 2)
		releases := make([]func(), 2)
		for i := range lines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				release, line, err := holdLine(ctx, s, slotScript(dir, newJobID("000000000000")))
				if err != nil {
					t.Error(err)
					return
				}
				lines[i], releases[i] = line, release
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if got := lines[0] + "," + lines[1]; got != "held 0,held 1" && got != "held 1,held 0" {
			t.Fatalf("round %d: two claims at once said %s, want one idle and one busy", round, got)
		}
		releases[0]()
		releases[1]()
	}
	claims := filepath.Join(home, ".cache", "farm", "builds", "run_podman_podman.sock")
	dead := filepath.Join(claims, "farm-dead.lock")
	if err := os.WriteFile(dead, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	release, line, err := holdLine(ctx, s, slotScript(dir, "farm-next"))
	if err != nil || line != "held 0" {
		t.Fatalf("after the releases, with a dead claim: %q, %v; want held 0", line, err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead claim's file is left: %v", err)
	}
	release()
	if left, _ := filepath.Glob(filepath.Join(claims, "*.lock")); len(left) != 0 {
		t.Errorf("claim files left after every release: %v", left)
	}
}

// busy holds another job's claim on the fake service's node until the test
// ends.
func busy(t *testing.T, srv *podmantest.Server) {
	t.Helper()
	release, line, err := holdLine(context.Background(), localShell(t), slotScript(node.ClaimDir(node.SocketPath(srv.URI)), "farm-other"))
	if err != nil || line != "held 0" {
		t.Fatalf("claiming %s for another job: %q, %v", srv.URI, line, err)
	}
	t.Cleanup(release)
}

// tcpNode serves a fake podman on tcp://: a node farm has no shell on.
func tcpNode(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: podmantest.New(t)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "tcp://" + ln.Addr().String()
}

// The planned node a held by another job: the job moves to an idle
// alternative of its class, and only then.
func TestRunnerMovesFromABusyNode(t *testing.T) {
	emulated := func(f *fixture, j *record.Job) {
		j.Alternatives[0].Native, j.Alternatives[0].Emulated = nil, []string{"linux/amd64"}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *fixture, j *record.Job)
		want  string
	}{
		{"planned idle", func(*testing.T, *fixture, *record.Job) {}, "a"},
		{"planned busy, native alternative idle", func(t *testing.T, f *fixture, _ *record.Job) { busy(t, f.a) }, "b"},
		{"planned busy, alternative emulated", func(t *testing.T, f *fixture, j *record.Job) { busy(t, f.a); emulated(f, j) }, "a"},
		{"planned busy, alternative low on storage", func(t *testing.T, f *fixture, j *record.Job) {
			busy(t, f.a)
			j.Alternatives[0].Load = &record.Load{StorageFree: 100 << 20}
		}, "a"},
		{"all busy", func(t *testing.T, f *fixture, _ *record.Job) { busy(t, f.a); busy(t, f.b) }, "a"},
		{"planned stop none", func(t *testing.T, f *fixture, j *record.Job) { busy(t, f.a); j.Node.Stop = record.StopNone }, "a"},
		{"planned tcp", func(t *testing.T, f *fixture, j *record.Job) { j.Node.URI = tcpNode(t) }, "a"},
		{"alternative tcp", func(t *testing.T, f *fixture, j *record.Job) { busy(t, f.a); j.Alternatives[0].URI = tcpNode(t) }, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir())
			f := newFixture(t, nil)
			job := f.job("linux/amd64")
			tc.setup(t, f, job)
			img, ok := f.runner.Run(context.Background(), job).(*record.Image)
			if !ok {
				t.Fatalf("no image:\n%s", f.log)
			}
			if img.Node != tc.want {
				t.Fatalf("built on %s, want %s:\n%s", img.Node, tc.want, f.log)
			}
			moved := strings.Contains(f.log.String(), `msg="moving a job to an idle node" platform=linux/amd64 from=a to=b`)
			if moved != (tc.want == "b") {
				t.Errorf("the move was logged: %v, want %v:\n%s", moved, tc.want == "b", f.log)
			}
			if img.Emulated {
				t.Errorf("moved to an emulating node: %+v", img)
			}
		})
	}
}

// A planned node that accepts TCP and never speaks: placing the job gives
// up on it within the job's --timeout (so does the job's own attempt
// there), and the job fails over as it did before claims.
func TestRunnerPlacesPastABlackholedNode(t *testing.T) {
	addr, key := podmantest.Blackhole(t), podmantest.SSHKey(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Timeout = 4 * time.Second; c.SSH = conn.SSHOptions{KnownHosts: []string{kh}} })
	job := f.job("linux/amd64")
	job.Node.URI, job.Node.Identity = "ssh://root@"+addr+"/run/podman/podman.sock", key
	out := make(chan Outcome, 1)
	go func() { out <- f.runner.Run(context.Background(), job) }()
	select {
	case o := <-out:
		if img, ok := o.(*record.Image); !ok || img.Node != "b" {
			t.Fatalf("want an image from b, got %+v:\n%s", o, f.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the job hangs on the blackholed node past its 4 s --timeout:\n%s", f.log)
	}
}
