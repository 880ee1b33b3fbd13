package namelock

import (
	"context"
	"testing"
)

// Two writers of one name take turns; a writer waiting for the lock
// gives up when its context ends; other names are not held up.
func TestLockWaitsAndCancels(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(context.Background(), dir, "localhost/app:1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Lock(ctx, dir, "localhost/app:1"); err == nil {
		t.Error("a second writer got the lock")
	}
	other, err := Lock(ctx, dir, "localhost/app:1-linux-amd64")
	if err != nil {
		t.Errorf("another name waits for the first: %v", err)
	} else {
		other()
	}
	unlock()
	again, err := Lock(context.Background(), dir, "localhost/app:1")
	if err != nil {
		t.Fatal(err)
	}
	again()
}
