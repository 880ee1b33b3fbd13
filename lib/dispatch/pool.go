package dispatch

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/record"
)

// sessionPool keeps one connection per node for the whole run: a node with
// two jobs shares it. One dial serves every job that waits for it, but a
// dial cut short by its caller's cancellation answers no other caller: they
// dial again. Connections are keyed by the whole target, not the name
// alone: a plan may name a node with another URI than the connection
// opened early (Runner.Preconnect) under that name.
type sessionPool struct {
	open    func(context.Context, conn.Target, conn.SSHOptions) (*conn.Session, error)
	ssh     conn.SSHOptions
	log     *slog.Logger
	mu      sync.Mutex
	m       map[conn.Target]*poolEntry
	dropped []*poolEntry
}

type poolEntry struct {
	ready     chan struct{} // closed when the dial ended
	s         *conn.Session
	err       error
	cancelled bool // the dial failed because its caller's context ended
}

func newSessionPool(ssh conn.SSHOptions, log *slog.Logger) *sessionPool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &sessionPool{open: conn.Open, ssh: ssh, log: log, m: map[conn.Target]*poolEntry{}}
}

func (p *sessionPool) get(ctx context.Context, n record.Node) (*conn.Session, error) {
	t := conn.Target{Name: n.Name, URI: n.URI, Identity: n.Identity}
	for {
		p.mu.Lock()
		e, ok := p.m[t]
		if !ok {
			e = &poolEntry{ready: make(chan struct{})}
			p.m[t] = e
			p.mu.Unlock()
			return p.dial(ctx, t, e)
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

func (p *sessionPool) dial(ctx context.Context, t conn.Target, e *poolEntry) (*conn.Session, error) {
	p.log.Debug("connecting", "node", t.Name, "uri", record.RedactURI(t.URI))
	e.s, e.err = p.open(ctx, t, p.ssh)
	if e.err != nil {
		e.cancelled = ctx.Err() != nil
		// A failed connection is not cached: a later job may try again.
		p.mu.Lock()
		if p.m[t] == e {
			delete(p.m, t)
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
	for t, e := range p.m {
		if t.Name == name {
			p.dropped = append(p.dropped, e)
			delete(p.m, t)
		}
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
