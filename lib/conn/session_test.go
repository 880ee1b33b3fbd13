package conn

import (
	"context"
	"testing"

	"github.com/farm-build/farm/lib/podmantest"
)

// A Connect cut short by its caller's cancellation is not kept for the
// next caller (issue 15 item 11); the first success is shared.
func TestConnectDoesNotCacheACancelledDial(t *testing.T) {
	fake := podmantest.New(t)
	s, err := Open(context.Background(), Target{Name: "n", URI: fake.URI}, SSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Connect(cancelled); err == nil {
		t.Fatal("Connect under a cancelled context succeeded")
	}
	c1, err := s.Connect(context.Background())
	if err != nil {
		t.Fatalf("the cancelled dial answered for a later caller: %v", err)
	}
	c2, err := s.Connect(context.Background())
	if err != nil || c1 != c2 {
		t.Errorf("the connection is not shared: %v", err)
	}
	if s.Remote() || s.SSH() != nil || s.URI() != fake.URI {
		t.Errorf("a unix:// session: remote %v uri %q", s.Remote(), s.URI())
	}
}
