package filelock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Two opens of one file conflict as two processes would (flock locks belong
// to the open file description, LockFileEx locks to the handle).
func TestLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := TryLock(a); err != nil {
		t.Fatalf("first exclusive lock: %v", err)
	}
	if err := TryLock(b); !errors.Is(err, ErrLocked) {
		t.Fatalf("second exclusive lock while held: %v, want ErrLocked", err)
	}
	if err := LockShared(a); err != nil {
		t.Fatalf("exclusive to shared: %v", err)
	}
	if err := LockShared(b); err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if err := TryLock(open(t, path)); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock under shared ones: %v, want ErrLocked", err)
	}
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := TryLock(open(t, path)); err != nil {
		t.Fatalf("exclusive lock after release: %v", err)
	}
}
