package conn

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Dead tunnels (a socket nobody listens on) go, whatever their name says;
// live ones stay, also under a name whose PID is not running; other
// directories, and a tunnel being made (no socket yet), stay.
func TestSweepDeadTunnels(t *testing.T) {
	tmp := t.TempDir()
	mk := func(name string, listen bool) string {
		dir := filepath.Join(tmp, name)
		os.Mkdir(dir, 0o700)
		l, err := net.Listen("unix", filepath.Join(dir, "podman.sock"))
		if err != nil {
			t.Fatal(err)
		}
		if listen {
			t.Cleanup(func() { l.Close() })
		} else {
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}
		return dir
	}
	dead := mk("farm-tunnel-999999999-1", false)
	deadOld := mk("farm-tunnel-12345", false)
	live := mk("farm-tunnel-999999999-2", true)
	liveHere := mk(tunnelPattern()+"3", false) // this process runs: not asked
	making := filepath.Join(tmp, "farm-tunnel-999999999-4")
	os.Mkdir(making, 0o700)
	other := mk("farm-local-1", false)

	removed := sweepDeadTunnels(tmp)
	slices.Sort(removed)
	if want := []string{deadOld, dead}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, d := range []string{live, liveHere, making, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed", d)
		}
	}
}
