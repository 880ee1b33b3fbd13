// Package proxy joins every connection accepted on a listener to a new
// connection from a dial function, copying both ways and counting the bytes.
// farm needs this twice: the local socket that tunnels pkg/bindings to a
// node's podman socket over SSH (lib/conn), and the node's end of the SSH
// remote forward to the transfer registry (lib/transfer).
package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy serves one listener.
type Proxy struct {
	ln   net.Listener
	dial func() (net.Conn, error)
	in   atomic.Int64 // from the listener's side to the dialled side
	out  atomic.Int64 // from the dialled side back

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Serve starts joining connections accepted on ln to connections from dial.
// A failed dial closes the accepted connection: its client sees why its
// request failed there.
func Serve(ln net.Listener, dial func() (net.Conn, error)) *Proxy {
	p := &Proxy{ln: ln, dial: dial, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			if !p.track(c) {
				c.Close()
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer p.untrack(c)
				p.serve(c)
			}()
		}
	}()
	return p
}

func (p *Proxy) serve(client net.Conn) {
	defer client.Close()
	server, err := p.dial()
	if err != nil {
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { pipe(server, client, &p.in); done <- struct{}{} }()
	go func() { pipe(client, server, &p.out); done <- struct{}{} }()
	// Both directions run to their end: HTTP clients may half-close.
	<-done
	<-done
}

// pipe copies src to dst, counting as it goes (a transfer cut short still
// counts what crossed), then passes the end of the stream on.
func pipe(dst, src net.Conn, n *atomic.Int64) {
	io.Copy(Counter{W: dst, N: n}, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
}

// Counter passes writes on to W and adds what was written to N, which may
// be read while the copy runs (a transfer cut short still counts what
// crossed).
type Counter struct {
	W io.Writer
	N *atomic.Int64
}

func (c Counter) Write(b []byte) (int, error) {
	n, err := c.W.Write(b)
	c.N.Add(int64(n))
	return n, err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Addr is the listener's address.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Bytes reports what crossed so far: in is from the listener's clients to
// the dialled side, out is back.
func (p *Proxy) Bytes() (in, out int64) { return p.in.Load(), p.out.Load() }

// Close stops listening, cuts the connections still open and waits for
// every copy to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
