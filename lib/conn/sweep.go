package conn

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A tunnel's directory is $TMPDIR/farm-tunnel-PID-RANDOM/podman.sock, PID
// the process that serves it. The process removes it when its session
// closes; a process killed with SIGKILL (or crashed) cannot, so each new
// tunnel first removes the directories of dead ones.
//
// Dead is proven, not guessed: a directory is removed only when its
// socket exists and refuses connections (no process listens on it any
// more: a listener lives exactly as long as its tunnel). To keep from
// knocking at live tunnels (each connection a tunnel accepts opens a
// channel to its node), a directory whose PID is a running process is
// left alone without asking; a PID in use by another process after the
// owner died only delays the clean-up.

const tunnelPrefix = "farm-tunnel-"

// tunnelPattern is os.MkdirTemp's pattern for this process's tunnels.
func tunnelPattern() string { return tunnelPrefix + strconv.Itoa(os.Getpid()) + "-" }

// sweepDeadTunnels removes the tunnel directories in dir whose process is
// gone, and returns them.
func sweepDeadTunnels(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, tunnelPrefix) {
			continue
		}
		if pid, _, ok := strings.Cut(strings.TrimPrefix(name, tunnelPrefix), "-"); ok && running(pid) {
			continue
		}
		path := filepath.Join(dir, name)
		c, err := net.Dial("unix", filepath.Join(path, "podman.sock"))
		if err == nil {
			c.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) && os.RemoveAll(path) == nil {
			removed = append(removed, path)
		}
	}
	return removed
}

// running reports whether pid names a running process (false when unsure).
func running(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	p, err := os.FindProcess(n)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}
