package transfer

import (
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Forward connects every connection accepted on a listener (the node's end
// of an SSH remote forward, or a loopback listener for a unix:// node) to
// the transfer registry, and counts the bytes both ways.
type Forward struct {
	ln     net.Listener
	target string
	in     atomic.Int64 // from the listener's side (the node) to the registry
	out    atomic.Int64 // from the registry to the node

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ServeForward starts forwarding ln to target (host:port on this machine).
func ServeForward(ln net.Listener, target string) *Forward {
	f := &Forward{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			if !f.track(c) {
				c.Close()
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer f.untrack(c)
				f.serve(c)
			}()
		}
	}()
	return f
}

func (f *Forward) serve(node net.Conn) {
	defer node.Close()
	reg, err := net.DialTimeout("tcp", f.target, 10*time.Second)
	if err != nil {
		return // the node sees the connection close, and its push fails saying so
	}
	if !f.track(reg) {
		reg.Close()
		return
	}
	defer f.untrack(reg)
	defer reg.Close()
	done := make(chan struct{}, 2)
	go func() { pipe(reg, node, &f.in); done <- struct{}{} }()
	go func() { pipe(node, reg, &f.out); done <- struct{}{} }()
	// Both directions run to their end: HTTP clients may half-close.
	<-done
	<-done
}

// pipe copies src to dst, counting as it goes (a transfer cut short still
// counts what crossed), then passes the end of the stream on.
func pipe(dst, src net.Conn, n *atomic.Int64) {
	io.Copy(countingWriter{dst, n}, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
}

func (f *Forward) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forward) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// Addr is the listener's address as the node sees it.
func (f *Forward) Addr() net.Addr { return f.ln.Addr() }

// Port is the listener's port.
func (f *Forward) Port() int {
	if a, ok := f.ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	_, p, _ := net.SplitHostPort(f.ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// Bytes reports what crossed so far: in is node to registry (this
// machine), out is registry to node.
func (f *Forward) Bytes() (in, out int64) { return f.in.Load(), f.out.Load() }

// Close stops listening (for an SSH forward: cancels it on the node), cuts
// the connections still open and waits for every copy to end.
func (f *Forward) Close() error {
	f.mu.Lock()
	f.closed = true
	err := f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

// ListenFunc opens a listener: (*ssh.Client).Listen on the node's side of
// its SSH connection, or net.Listen on this machine.
type ListenFunc func(network, addr string) (net.Listener, error)

// Stable ports: 127.0.0.1 on the node, in 23000-23999 (below Linux's
// ephemeral range, so no outgoing connection holds them by chance).
const (
	stablePortBase  = 23000
	stablePortRange = 1000
	stableTries     = 4
)

// StablePorts are the ports ListenStable tries for key, in order. The
// node's podman remembers where it pushed each layer by registry host:port
// (its blob-info cache); on another port it does not know the registry has
// the layer and uploads it again. So a node pushes through the same port
// run after run: one derived from the node and platform, so that two
// platforms built at once on one node do not compete for it.
func StablePorts(key string) []int {
	h := fnv.New32a()
	h.Write([]byte(key))
	first := int(h.Sum32() % stablePortRange)
	ports := make([]int, stableTries)
	for i := range ports {
		ports[i] = stablePortBase + (first+i)%stablePortRange
	}
	return ports
}

// ListenStable listens on 127.0.0.1 at the first free port of
// StablePorts(key), else on any port. It fails only when no port can be
// had at all: for an SSH node, when its sshd refuses remote forwarding.
func ListenStable(listen ListenFunc, key string) (net.Listener, error) {
	ports := StablePorts(key)
	for _, p := range ports {
		if ln, err := listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			return ln, nil
		}
	}
	ln, err := listen("tcp", "127.0.0.1:0")
	if err != nil {
		// sshd gives no reason for a refusal; that any port is refused
		// says forwarding is off.
		return nil, fmt.Errorf("listening on 127.0.0.1 (ports %v, then any): %w", ports, err)
	}
	return ln, nil
}
