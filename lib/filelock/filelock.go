// Package filelock takes advisory whole-file locks on an open file, the same
// way on every OS farm builds for: flock(2) on unix, LockFileEx on Windows.
// Closing the file releases its lock.
package filelock

import (
	"errors"
	"os"
)

// ErrLocked means another holder has the lock and the caller asked not to wait.
var ErrLocked = errors.New("locked by another process")

// Lock waits for an exclusive lock on f.
func Lock(f *os.File) error { return lock(f, true, true) }

// TryLock takes an exclusive lock on f or returns ErrLocked at once.
func TryLock(f *os.File) error { return lock(f, true, false) }

// LockShared waits for a shared lock on f. On a file f already holds
// exclusively it turns that lock into a shared one.
func LockShared(f *os.File) error { return lock(f, false, true) }

// Unlock releases f's lock.
func Unlock(f *os.File) error { return unlock(f) }
