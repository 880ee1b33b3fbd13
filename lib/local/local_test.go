package local

import (
	"context"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
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

// CONTAINER_HOST that does not answer is an error that says so, never
// silently replaced by another service.
func TestOpenRefusesADeadContainerHost(t *testing.T) {
	t.Setenv("CONTAINER_HOST", "unix://"+t.TempDir()+"/nothing.sock")
	_, err := Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "CONTAINER_HOST") {
		t.Fatalf("want an error naming CONTAINER_HOST, got %v", err)
	}
}
