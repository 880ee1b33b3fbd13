package dispatch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/progress"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/registry"
	"github.com/farm-build/farm/lib/transfer"
)

// fixture is a run against fake podman services: nodes a and b, and the
// local service the images come back to.
type fixture struct {
	a, b, local *podmantest.Server
	runner      *Runner
	log         *bytes.Buffer

	mu    sync.Mutex
	stops []string // "jobID kill=true|false" per stop on a node
	dials map[string]int
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	t.Setenv("HOME", t.TempDir()) // the nodes' shell is this host's: their claims go there
	f := &fixture{a: podmantest.New(t), b: podmantest.New(t), local: podmantest.New(t), log: &bytes.Buffer{}, dials: map[string]int{}}
	localClient, err := podman.Connect(context.Background(), f.local.URI)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&syncWriter{w: f.log}, nil))
	puller := transfer.NewPuller(localClient, transfer.Options{Mode: transfer.ModeArchive, Log: log})
	t.Cleanup(func() { puller.Close() })
	cfg := Config{
		Tag: "localhost/app:1", Context: func() io.Reader { return strings.NewReader("context bytes") }, ContextSize: 13,
		PullBack: puller, Log: log, Progress: progress.NewPlain(&syncWriter{w: f.log}), Stage: "farm-build",
		Prepared: record.Phase{Name: record.PhaseContext, Start: "2026-01-02T03:04:05.000Z", End: "2026-01-02T03:04:05.250Z"},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	f.runner = NewRunner(cfg)
	f.runner.tmpDirs = []string{t.TempDir()} // not this machine's /var/tmp
	t.Cleanup(f.runner.Close)
	f.runner.stop = func(_ context.Context, s *conn.Session, jobID string, _ node.Kind, kill bool) (string, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stops = append(f.stops, s.Target.Name+" "+map[bool]string{true: "kill", false: "tidy"}[kill])
		return "", nil
	}
	open := f.runner.sessions.open
	f.runner.sessions.open = func(ctx context.Context, tg conn.Target, o conn.SSHOptions) (*conn.Session, error) {
		f.mu.Lock()
		f.dials[tg.Name]++
		f.mu.Unlock()
		return open(ctx, tg, o)
	}
	return f
}

func (f *fixture) job(plat string) *record.Job {
	return &record.Job{Platform: plat,
		Node:         record.Node{Name: "a", URI: f.a.URI, Native: []string{"linux/amd64"}, CgroupManager: "cgroupfs"},
		Alternatives: []record.Node{{Name: "b", URI: f.b.URI, Native: []string{"linux/amd64"}}}}
}

func (f *fixture) stopsOn(node string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.stops {
		if strings.HasPrefix(s, node+" ") {
			out = append(out, s)
		}
	}
	return out
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

var buildFails = podmantest.Stream(
	map[string]string{"stream": "STEP 1/1: RUN false\n"},
	map[string]any{"error": "exit status 1", "errorDetail": map[string]string{"message": `building at STEP "RUN false": exit status 1`}})

func TestRunnerFailureKinds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   func(f *fixture)
		wantNode string // the node of the image, or of the error record
		wantErr  string // empty: an image
		bBuilds  int    // builds b got
		stopKill bool   // a job stopped on a with kill
		phases   string // the record's phases (see phaseNames)
	}{
		{name: "success on the first node", script: func(*fixture) {}, wantNode: "a",
			phases: "context connect@a upload@a build@a pull@a"},
		{name: "node dies mid-build: fail over", script: func(f *fixture) {
			f.a.Handle(http.MethodPost, "/build", podmantest.DieMidStream(map[string]string{"stream": "STEP 1/2\n"}))
		}, wantNode: "b", bBuilds: 1, stopKill: true,
			phases: "context connect@a upload@a build@a! connect@b upload@b build@b pull@b"},
		{name: "node refuses the connection: fail over", script: func(f *fixture) { f.a.Close() }, wantNode: "b", bBuilds: 1,
			phases: "context connect@a! connect@b upload@b build@b pull@b"},
		{name: "build fails: no fail-over", script: func(f *fixture) {
			f.a.Handle(http.MethodPost, "/build", buildFails)
		}, wantNode: "a", wantErr: `building linux/amd64 on a: building at STEP "RUN false": exit status 1`, stopKill: true,
			phases: "context connect@a upload@a build@a!"},
		{name: "server refuses the build request: no fail-over", script: func(f *fixture) {
			f.a.Handle(http.MethodPost, "/build", podmantest.Fail(http.StatusBadRequest, "bad dockerfile parameter"))
		}, wantNode: "a", wantErr: "bad dockerfile parameter", stopKill: true,
			phases: "context connect@a upload@a build@a!"},
		{name: "local service fails the load: stop", script: func(f *fixture) {
			f.local.Handle(http.MethodPost, "/images/load", podmantest.Fail(http.StatusInternalServerError, "no space left on device"))
		}, wantNode: "a", wantErr: "pulling linux/amd64 back from a: local podman service " + "unix://",
			phases: "context connect@a upload@a build@a pull@a!"},
		{name: "export fails on the node: fail over", script: func(f *fixture) {
			f.a.Handle(http.MethodGet, "/images/export", podmantest.DieMidStream())
		}, wantNode: "b", bBuilds: 1,
			phases: "context connect@a upload@a build@a pull@a! connect@b upload@b build@b pull@b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tc.script(f)
			out := f.runner.Run(context.Background(), f.job("linux/amd64"))
			var phases []record.Phase
			switch rec := out.(type) {
			case *record.Image:
				phases = rec.Phases
				if tc.wantErr != "" {
					t.Fatalf("got an image, want error %q", tc.wantErr)
				}
				if rec.Node != tc.wantNode || rec.Ref != "localhost/app:1-linux-amd64" || rec.Transfer != "archive" || rec.BytesIn == 0 || rec.Emulated {
					t.Errorf("image %+v", rec)
				}
				if img, ok := f.local.Image(rec.ID); !ok || !contains(img.Names, rec.Ref) {
					t.Errorf("local storage: %+v %v", img, ok)
				}
			case *record.Error:
				phases = rec.Phases
				if tc.wantErr == "" || !strings.Contains(rec.Error, tc.wantErr) || rec.Node != tc.wantNode {
					t.Fatalf("error record %+v, want %q on %s", rec, tc.wantErr, tc.wantNode)
				}
			}
			if got := phaseNames(t, phases); got != tc.phases {
				t.Errorf("phases %q, want %q\n%+v", got, tc.phases, phases)
			}
			if got := f.b.Count("POST /build"); got != tc.bBuilds {
				t.Errorf("b got %d builds, want %d\n%s", got, tc.bBuilds, f.log)
			}
			if kill := contains(f.stopsOn("a"), "a kill"); kill != tc.stopKill {
				t.Errorf("stops on a: %v, want a kill: %v", f.stopsOn("a"), tc.stopKill)
			}
		})
	}
}

// phaseNames writes phases as "name@node", "!" marking the failed ones,
// and checks that each of an attempt's phases begins when the one before
// it ended (the run's context phase ends earlier, the jobs wait for the
// whole plan; a failed attempt ends before the next one begins).
func phaseNames(t *testing.T, phases []record.Phase) string {
	t.Helper()
	var names []string
	var last time.Time
	for i, p := range phases {
		start, end, err := p.Times()
		if err != nil {
			t.Errorf("phase %d: %v", i, err)
		}
		gap := i == 1 || i > 0 && phases[i-1].Error != ""
		if i > 0 && (gap && start.Before(last) || !gap && !start.Equal(last)) {
			t.Errorf("phase %d (%s) starts at %s, not when phase %d ended (%s)", i, p.Name, p.Start, i-1, phases[i-1].End)
		}
		last = end
		n := p.Name
		if p.Node != "" {
			n += "@" + p.Node
		}
		if p.Error != "" {
			n += "!"
		}
		names = append(names, n)
	}
	return strings.Join(names, " ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Ctrl-C mid-build: the job ends with the run's cause, the remote build is
// stopped (kill) and no other node is tried.
func TestRunnerCancelStopsTheRemoteBuild(t *testing.T) {
	f := newFixture(t, nil)
	started := make(chan struct{}, 1)
	f.a.Handle(http.MethodPost, "/build", podmantest.Stall(started))
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { <-started; cancel(errors.New("interrupted")) }()
	out := f.runner.Run(ctx, f.job("linux/amd64"))
	rec, ok := out.(*record.Error)
	if !ok || !strings.Contains(rec.Error, "interrupted") {
		t.Fatalf("outcome %+v", out)
	}
	if got := f.stopsOn("a"); len(got) != 1 || got[0] != "a kill" {
		t.Errorf("stops on a: %v", got)
	}
	if f.b.Count("POST /build") != 0 {
		t.Error("a cancelled job failed over")
	}
}

// --timeout bounds each attempt: a node that hangs is given up on, its
// build killed, and the job moves on; when every node hangs the record
// says the job timed out. (1 s, not less: the attempt on b must finish
// within it too, and at a load of 15 on two cores 200 ms failed one run in
// five.)
func TestRunnerTimeout(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Timeout = time.Second })
	f.a.Handle(http.MethodPost, "/build", podmantest.Stall(nil))
	if img, ok := f.runner.Run(context.Background(), f.job("linux/amd64")).(*record.Image); !ok || img.Node != "b" {
		t.Fatalf("outcome %+v", img)
	}
	if got := f.stopsOn("a"); len(got) != 1 || got[0] != "a kill" {
		t.Errorf("stops on a: %v", got)
	}
	f.b.Handle(http.MethodPost, "/build", podmantest.Stall(nil))
	out := f.runner.Run(context.Background(), f.job("linux/arm64"))
	if rec, ok := out.(*record.Error); !ok || !strings.Contains(rec.Error, "job timed out after 1s (--timeout)") || rec.Node != "b" {
		t.Fatalf("outcome %+v", out)
	}
}

// A node that failed is dialled again by the next job rather than reused.
func TestRunnerReconnectsAfterANodeFailure(t *testing.T) {
	f := newFixture(t, nil)
	var once sync.Once
	die := podmantest.DieMidStream(map[string]string{"stream": "STEP 1/2\n"})
	f.a.Handle(http.MethodPost, "/build", func(w http.ResponseWriter, r *http.Request) {
		failed := false
		once.Do(func() { failed = true; die(w, r) })
		if !failed {
			podmantest.Stream(map[string]string{"stream": podmantest.BuiltID(r.URL.Query().Get("platform")) + "\n"})(w, r)
			f.a.AddImage(podmantest.Image{ID: podmantest.BuiltID(r.URL.Query().Get("platform")), Arch: "arm64"})
		}
	})
	if img, ok := f.runner.Run(context.Background(), f.job("linux/amd64")).(*record.Image); !ok || img.Node != "b" {
		t.Fatalf("first job: %+v", img)
	}
	if img, ok := f.runner.Run(context.Background(), f.job("linux/arm64")).(*record.Image); !ok || img.Node != "a" || !img.Emulated {
		t.Fatalf("second job: %+v\n%s", img, f.log)
	}
	if f.dials["a"] != 2 {
		t.Errorf("a dialled %d times, want 2 (a reconnect after its failure)", f.dials["a"])
	}
}

// Two jobs for one platform: the second is refused; an image already in
// local storage is not transferred again; --cleanup removes it from the node.
func TestRunnerDuplicatesReuseAndCleanup(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Cleanup = true })
	id := podmantest.BuiltID("linux/amd64")
	f.local.AddImage(podmantest.Image{ID: id})
	img, ok := f.runner.Run(context.Background(), f.job("linux/amd64")).(*record.Image)
	if !ok || img.Transfer != "none" || img.BytesIn != 0 {
		t.Fatalf("first: %+v", img)
	}
	if _, still := f.a.Image(id); still {
		t.Error("--cleanup left the image on the node")
	}
	if rec, ok := f.runner.Run(context.Background(), f.job("amd64")).(*record.Error); !ok || !strings.Contains(rec.Error, "a second job for linux/amd64") {
		t.Errorf("duplicate: %+v", rec)
	}
	if rec, ok := f.runner.Run(context.Background(), &record.Job{Platform: "not/a/plat/form"}).(*record.Error); !ok || !strings.Contains(rec.Error, "job platform") {
		t.Errorf("bad platform: %+v", rec)
	}
	unreachable := f.job("linux/arm64")
	unreachable.Node.Error, unreachable.Alternatives = "down", nil
	if rec, ok := f.runner.Run(context.Background(), unreachable).(*record.Error); !ok || !strings.Contains(rec.Error, "no reachable node") {
		t.Errorf("unreachable: %+v", rec)
	}
}

// Two runs of one -t building on one node at once: buildah finds the id of
// the image it committed by the image's name, so a build that names its
// image may be told the other run's image when that run's commit takes the
// name first. The handler is that race, lost every time; the job must
// still get its own image, and the node's per-platform tag ends on it.
func TestRunnerGetsItsOwnImageWhenAnotherRunTakesTheName(t *testing.T) {
	f := newFixture(t, nil)
	theirs := podmantest.BuildID("the other run's image")
	f.a.Handle(http.MethodPost, "/build", func(w http.ResponseWriter, r *http.Request) {
		podmantest.Drain(r)
		ours := podmantest.BuiltID(r.URL.Query().Get("platform"))
		name := r.URL.Query().Get("t")
		reported := ours
		if name != "" {
			f.a.AddImage(podmantest.Image{ID: ours, Names: []string{name}})
			f.a.AddImage(podmantest.Image{ID: theirs, Names: []string{name}}) // takes the name
			reported = theirs
		} else {
			f.a.AddImage(podmantest.Image{ID: ours})
		}
		podmantest.Stream(map[string]string{"stream": reported + "\n"})(w, r)
	})
	img, ok := f.runner.Run(context.Background(), f.job("linux/amd64")).(*record.Image)
	ours := podmantest.BuiltID("linux/amd64")
	if !ok || img.ID != ours {
		t.Fatalf("got %+v, want the job's own image %s\n%s", img, ours, f.log)
	}
	if named, _ := f.a.Image("localhost/app:1-linux-amd64"); named.ID != ours {
		t.Errorf("the node's localhost/app:1-linux-amd64 is on %s, want the job's image", named.ID)
	}
}

// --push: the node pushes; a registry that refuses is not the node's fault.
func TestRunnerPush(t *testing.T) {
	t.Setenv("REGISTRY_AUTH_FILE", t.TempDir()+"/auth.json")
	f := newFixture(t, func(c *Config) { c.Push = &registry.Options{}; c.PullBack = nil })
	img, ok := f.runner.Run(context.Background(), f.job("linux/amd64")).(*record.Image)
	if !ok || img.Transfer != "push" || !strings.HasPrefix(img.Ref, "localhost/app@sha256:") {
		t.Fatalf("push: %+v\n%s", img, f.log)
	}
	if got := phaseNames(t, img.Phases); got != "context connect@a upload@a build@a push@a" {
		t.Errorf("phases of a pushed image: %q", got)
	}
	f2 := newFixture(t, func(c *Config) { c.Push = &registry.Options{}; c.PullBack = nil })
	f2.a.Handle(http.MethodPost, "/images/[^/]+/push", podmantest.Stream(map[string]string{"error": "unauthorized: authentication required"}))
	rec, ok := f2.runner.Run(context.Background(), f2.job("linux/amd64")).(*record.Error)
	if !ok || !strings.Contains(rec.Error, "unauthorized") || rec.Node != "a" || f2.b.Count("POST /build") != 0 {
		t.Fatalf("refused push: %+v", rec)
	}
	if got := phaseNames(t, rec.Phases); got != "context connect@a upload@a build@a push@a!" {
		t.Errorf("phases of a refused push: %q", got)
	}
	if _, left := f2.a.Image(podmantest.BuiltID("linux/amd64")); left {
		t.Error("a failed push left the image on the node")
	}
}

// Process: every job's outcome is written; a cancelled run undoes what it
// pulled back.
func TestProcessRunsJobsAndUndoes(t *testing.T) {
	f := newFixture(t, nil)
	var in bytes.Buffer
	enc := record.NewEncoder(&in)
	enc.Write(f.job("linux/amd64"))
	enc.Write(f.job("linux/arm64"))
	enc.End("farm-plan")
	// arm64 fails wherever it builds (a busy with amd64 may hand it to b).
	for _, srv := range []*podmantest.Server{f.a, f.b} {
		srv.Handle(http.MethodPost, "/build", func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Query().Get("platform"), "arm64") {
				buildFails(w, r)
				return
			}
			podmantest.Drain(r)
			id := podmantest.BuiltID(r.URL.Query().Get("platform"))
			srv.AddImage(podmantest.Image{ID: id})
			podmantest.Stream(map[string]string{"stream": id + "\n"})(w, r)
		})
	}
	var out bytes.Buffer
	err := f.runner.Process(context.Background(), &in, record.NewEncoder(&out))
	if err == nil || !strings.Contains(err.Error(), "1 of 2 platforms failed") {
		t.Fatalf("Process: %v", err)
	}
	if n := strings.Count(out.String(), "\n"); n != 3 || !strings.HasSuffix(out.String(), `{"v":1,"kind":"end","stage":"farm-build"}`+"\n") {
		t.Errorf("%d records, want 2 and the end record:\n%s", n, out.String())
	}
	if len(f.local.Images()) != 1 {
		t.Fatalf("local storage %v", f.local.Images())
	}
	f.runner.Undo()
	if len(f.local.Images()) != 0 {
		t.Errorf("Undo left %v", f.local.Images())
	}
}

func TestPreconnect(t *testing.T) {
	for _, tc := range []struct {
		name      string
		early     func(f *fixture) conn.Target
		wantDials int // dials to a, early one included
	}{
		{"the job finds its node connected", func(f *fixture) conn.Target { return conn.Target{Name: "a", URI: f.a.URI} }, 1},
		{"a node of the same name elsewhere is not reused", func(f *fixture) conn.Target { return conn.Target{Name: "a", URI: f.b.URI} }, 2},
		{"a node the plan does not name costs one connection", func(f *fixture) conn.Target { return conn.Target{Name: "b", URI: f.b.URI} }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.runner.Preconnect(context.Background(), []conn.Target{tc.early(f)})
			f.runner.early.Wait()
			out := f.runner.Run(context.Background(), f.job("linux/amd64"))
			img, ok := out.(*record.Image)
			if !ok || img.Node != "a" {
				t.Fatalf("want an image from a, got %#v\nlog:\n%s", out, f.log)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.dials["a"] != tc.wantDials {
				t.Errorf("dials to a: %d, want %d (all dials: %v)", f.dials["a"], tc.wantDials, f.dials)
			}
		})
	}
}

func TestCloseDoesNotWaitForANodeThatNeverAnswers(t *testing.T) {
	f := newFixture(t, nil)
	dialing := make(chan struct{})
	f.runner.sessions.open = func(ctx context.Context, _ conn.Target, _ conn.SSHOptions) (*conn.Session, error) {
		close(dialing)
		<-ctx.Done() // a blackholed node: only cancellation ends the dial
		return nil, context.Cause(ctx)
	}
	f.runner.Preconnect(context.Background(), []conn.Target{{Name: "x", URI: "ssh://root@192.0.2.1/run/podman/podman.sock"}})
	<-dialing
	closed := make(chan struct{})
	go func() { f.runner.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for an early connection that never answers")
	}
}

// TestInfoOnlyWhenTheRecordDoesNotSay: a node record from farm-nodes says
// everything a job needs of the node (its kind, where its storage is), so
// the run asks the node's /info nothing, early connection or not: on a
// store of a few hundred images each /info costs most of a second. A
// record that does not say (an older farm-nodes, a hand-written plan)
// still works: the run asks.
func TestInfoOnlyWhenTheRecordDoesNotSay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		complete bool
		early    bool
		wantInfo bool
	}{
		{"farm-nodes' record", true, false, false},
		{"farm-nodes' record, connected early", true, true, false},
		{"a record without the node's kind", false, false, true},
		{"a record without the node's kind, connected early", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.a.Info["store"] = map[string]any{"graphRoot": t.TempDir()}
			job := f.job("linux/amd64")
			if tc.complete {
				job.Node.Stop, job.Node.GraphRoot = record.StopCgroup, t.TempDir()
			}
			if tc.early {
				f.runner.Preconnect(context.Background(), []conn.Target{{Name: "a", URI: f.a.URI}})
				f.runner.early.Wait()
			}
			if img, ok := f.runner.Run(context.Background(), job).(*record.Image); !ok || img.Node != "a" {
				t.Fatalf("want an image from a\nlog:\n%s", f.log)
			}
			if got := f.a.Count("GET /info") > 0; got != tc.wantInfo {
				t.Errorf("asked /info: %v, want %v (requests: %v)", got, tc.wantInfo, f.a.Requests())
			}
		})
	}
}
