package local

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/podmantest"
)

func TestCandidates(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := Candidates(env(map[string]string{"CONTAINER_HOST": "ssh://x/y.sock"})); !reflect.DeepEqual(got, []string{"ssh://x/y.sock"}) {
		t.Errorf("CONTAINER_HOST must win: %v", got)
	}
	got := Candidates(env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}))
	want := "unix:///run/user/1000/podman/podman.sock"
	if os.Geteuid() == 0 {
		want = "unix:///run/podman/podman.sock"
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %v, want [%s]", got, want)
	}
}

// A socket nobody listens on is passed over with one dial (the bindings
// alone retried for 0.6 s), and so is a file where a socket should be; a
// listening one is taken.
func TestListening(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fake := podmantest.New(t)
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"unix://" + filepath.Join(dir, "none.sock"), false},
		{"unix://" + stale, false},
		{"unix://" + plain, false},
		{fake.URI, true},
		{"ssh://root@192.0.2.1/run/podman/podman.sock", true}, // not dialled here
	} {
		if err := listening(context.Background(), tc.uri); (err == nil) != tc.want {
			t.Errorf("%s: %v, want listening %v", tc.uri, err, tc.want)
		}
	}
}

// CONTAINER_HOST that does not answer is an error that says so, never
// silently replaced by another service.
func TestOpenRefusesADeadContainerHost(t *testing.T) {
	t.Setenv("CONTAINER_HOST", "unix://"+t.TempDir()+"/nothing.sock")
	_, err := Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "CONTAINER_HOST") {
		t.Fatalf("want an error naming CONTAINER_HOST, got %v", err)
	}
}
