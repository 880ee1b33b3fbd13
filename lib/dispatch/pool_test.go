package dispatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/record"
)

// One job's cancelled dial must not answer for another job waiting on the
// same node (issue 15 item 11): the waiter dials again with its own context.
func TestPoolDoesNotShareACancelledDial(t *testing.T) {
	var dials atomic.Int32
	firstStarted := make(chan struct{})
	p := newSessionPool(conn.SSHOptions{}, nil)
	p.open = func(ctx context.Context, tg conn.Target, _ conn.SSHOptions) (*conn.Session, error) {
		if dials.Add(1) == 1 {
			close(firstStarted)
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}
		return &conn.Session{Target: tg}, nil
	}
	n := record.Node{Name: "lab-1", URI: "unix:///x"}
	ctx1, cancel1 := context.WithCancelCause(context.Background())
	first := make(chan error, 1)
	go func() { _, err := p.get(ctx1, n); first <- err }()
	<-firstStarted

	second := make(chan error, 1)
	var got *conn.Session
	go func() {
		s, err := p.get(context.Background(), n)
		got = s
		second <- err
	}()
	cause := errors.New("job 1 interrupted")
	cancel1(cause)
	if err := <-first; !errors.Is(err, cause) {
		t.Errorf("the cancelled caller got %v, want its own cause", err)
	}
	if err := <-second; err != nil || got == nil {
		t.Fatalf("the live caller got %v: another job's cancellation answered for it", err)
	}
	if s, err := p.get(context.Background(), n); err != nil || s != got {
		t.Errorf("a later caller does not share the connection: %v %v", s, err)
	}
	if d := dials.Load(); d != 2 {
		t.Errorf("%d dials, want 2", d)
	}
}

func TestPoolRetriesAFailedDialAndDrops(t *testing.T) {
	fail := true
	p := newSessionPool(conn.SSHOptions{}, nil)
	p.open = func(_ context.Context, tg conn.Target, _ conn.SSHOptions) (*conn.Session, error) {
		if fail {
			return nil, errors.New("connection refused")
		}
		return &conn.Session{Target: tg}, nil
	}
	n := record.Node{Name: "lab-2"}
	if _, err := p.get(context.Background(), n); err == nil {
		t.Fatal("a failed dial succeeded")
	}
	fail = false
	s1, err := p.get(context.Background(), n)
	if err != nil {
		t.Fatalf("a failed dial was cached: %v", err)
	}
	p.drop(n.Name)
	s2, _ := p.get(context.Background(), n)
	if s1 == s2 {
		t.Error("drop kept the connection")
	}
	p.closeAll()
}
