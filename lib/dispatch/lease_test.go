package dispatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
)

// localShell is a session whose shell is this host's (a unix:// node).
func localShell(t *testing.T) *conn.Session {
	t.Helper()
	s, err := conn.Open(context.Background(), conn.Target{Name: "here", URI: "unix:///nonexistent.sock"}, conn.SSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A run's lease (shared, one per session) keeps every other run from
// locking it; once the last holder is gone (closed or dead: its stdin
// ends either way) another run locks it, and the file goes with it.
func TestLeaseTellsLiveRunsFromDead(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	s := localShell(t)
	ctx := context.Background()
	run := newRunID()
	file := filepath.Join(home, ".cache", "farm", "runs", run+".lock")

	own1, err := hold(ctx, s, holdScript(run, true))
	if err != nil {
		t.Fatal(err)
	}
	own2, err := hold(ctx, s, holdScript(run, true)) // a second node, same home
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold(ctx, s, holdScript(run, false)); !errors.Is(err, errBusy) {
		t.Fatalf("a live run's lease was taken: %v", err)
	}
	own1()
	if _, err := hold(ctx, s, holdScript(run, false)); !errors.Is(err, errBusy) {
		t.Fatalf("a run holding one lease of two was taken for dead: %v", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the first release removed the file the other holds: %v", err)
	}
	own2()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("the run's last release left its lock file: %v", err)
	}
	reaper, err := hold(ctx, s, holdScript(run, false))
	if err != nil {
		t.Fatalf("a dead run's lock is free: %v", err)
	}
	// While a run cleans up after it, the dead run's lease cannot be
	// taken (a live run of that id would wait, and build only after).
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := hold(short, s, holdScript(run, true)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the lease was taken while a reaper held the lock: %v", err)
	}
	reaper()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("the reaper left the dead run's lock file: %v", err)
	}
}

func TestLeftovers(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	root := t.TempDir()
	dead, live := "0123456789ab", "ba9876543210"
	for ctr, content := range map[string]string{
		"c1":    `{"CommonBuildOpts":{"AddHost":["farm-` + dead + `00000001.invalid:127.0.0.1"]}}`,
		"c2":    `{"CommonBuildOpts":{"AddHost":["farm-` + live + `00000002.invalid:127.0.0.1"]}}`,
		"user":  `{"CommonBuildOpts":{"AddHost":["db.example:10.0.0.1"]}}`,
		"short": `{"CommonBuildOpts":{"AddHost":["farm-0123.invalid:127.0.0.1"]}}`,
	} {
		dir := filepath.Join(root, "overlay-containers", ctr, "userdata")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "buildah.json"), []byte(content), 0o644)
	}
	leases := filepath.Join(home, ".cache", "farm", "runs")
	os.MkdirAll(leases, 0o755)
	os.WriteFile(filepath.Join(leases, "aaaaaaaaaaaa.lock"), nil, 0o644)
	out, err := localShell(t).Run(context.Background(), leftoversScript(root, nil, "/nonexistent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	got := parseLeftovers(string(out), live)
	want := map[string]*leftovers{dead: {ctrs: []string{"c1"}}, "aaaaaaaaaaaa": {}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leftovers %v, want %v (script said %q)", got, want, out)
	}
}

// A dead run that left only its lock file: the file goes, and no stop
// script runs (its lock may be one a live run is taking right now).
func TestReapLockFileOnlyStopsNothing(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	r := NewRunner(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	stops := 0
	r.stop = func(context.Context, *conn.Session, string, node.Kind, bool) (string, error) { stops++; return "", nil }
	r.reapRun(localShell(t), nil, node.Kind{}, newRunID(), &leftovers{})
	if stops != 0 {
		t.Errorf("the stop script ran %d times for a run with no working container", stops)
	}
}
