package dispatch

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/record"
)

// sessionPool keeps one connection per node for the whole run: a node with
// two jobs shares it. One dial serves every job that waits for it, but a
// dial cut short by its caller's cancellation answers no other caller: they
// dial again.
type sessionPool struct {
	open    func(context.Context, conn.Target, conn.SSHOptions) (*conn.Session, error)
	ssh     conn.SSHOptions
	mu      sync.Mutex
	m       map[string]*poolEntry
	dropped []*poolEntry
}

type poolEntry struct {
	ready     chan struct{} // closed when the dial ended
	s         *conn.Session
	err       error
	cancelled bool // the dial failed because its caller's context ended
}

func newSessionPool(ssh conn.SSHOptions) *sessionPool {
	return &sessionPool{open: conn.Open, ssh: ssh, m: map[string]*poolEntry{}}
}

func (p *sessionPool) get(ctx context.Context, n record.Node) (*conn.Session, error) {
	for {
		p.mu.Lock()
		e, ok := p.m[n.Name]
		if !ok {
			e = &poolEntry{ready: make(chan struct{})}
			p.m[n.Name] = e
			p.mu.Unlock()
			return p.dial(ctx, n, e)
		}
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if e.err == nil || !e.cancelled || ctx.Err() != nil {
			return e.s, e.err
		}
		// Another job's cancellation ended the dial; ours goes on.
	}
}

func (p *sessionPool) dial(ctx context.Context, n record.Node, e *poolEntry) (*conn.Session, error) {
	e.s, e.err = p.open(ctx, conn.Target{Name: n.Name, URI: n.URI, Identity: n.Identity}, p.ssh)
	if e.err != nil {
		e.cancelled = ctx.Err() != nil
		// A failed connection is not cached: a later job may try again.
		p.mu.Lock()
		if p.m[n.Name] == e {
			delete(p.m, n.Name)
		}
		p.mu.Unlock()
	}
	close(e.ready)
	return e.s, e.err
}

func (p *sessionPool) drop(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Jobs may still use the old connection: it is closed with the rest.
	if e, ok := p.m[name]; ok {
		p.dropped = append(p.dropped, e)
		delete(p.m, name)
	}
}

func (p *sessionPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range append(p.dropped, slices.Collect(maps.Values(p.m))...) {
		select {
		case <-e.ready:
			if e.s != nil {
				e.s.Close()
			}
		default: // still dialling: its job closes nothing, the run is over
		}
	}
}
