package local

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/farm-build/farm/lib/filelock"
)

// The private service's directory, $TMPDIR/farm-local-*, holds its socket
// and its log. A stage that dies without a word (SIGKILL, a crash) cannot
// remove it; the kernel stops the service (detach), and the next start
// removes the directory, once provably dead: its stage holds an exclusive
// lock on the directory's lock file from before the log exists until the
// directory is gone, and the kernel drops that lock when the stage dies.
// So a directory with a log whose lock is free is a dead stage's; one
// without a log is being made, or an older farm's, and stays.

const lockName = "lock"

// makeDir makes the private service's directory and takes its lock.
func makeDir() (string, *os.File, error) {
	dir, err := os.MkdirTemp("", "farm-local-")
	if err != nil {
		return "", nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err = filelock.Lock(lock); err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, lock, nil
}

// dropDir removes the directory, then lets go of its lock (the second
// RemoveAll is for Windows, which removes no open file).
func dropDir(dir string, lock *os.File) {
	os.RemoveAll(dir)
	lock.Close()
	os.RemoveAll(dir)
}

// removeDeadDirs removes the directories in tmp of private services whose
// stage is dead. Failures are only logged: they do not stop the run.
func removeDeadDirs(tmp string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "farm-local-*"))
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "service.log")); err != nil {
			continue
		}
		lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0)
		if err != nil {
			continue // an older farm's, or not ours to open
		}
		err = filelock.TryLock(lock)
		if errors.Is(err, filelock.ErrLocked) {
			lock.Close()
			continue // its stage is alive
		}
		if err == nil {
			err = os.RemoveAll(dir)
		}
		lock.Close()
		if err != nil {
			log.Warn("removing a dead run's private podman service directory", "dir", dir, "error", err)
			continue
		}
		log.Debug("removed a dead run's private podman service directory", "dir", dir)
	}
}
