package transfer

import (
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"time"

	"github.com/farm-build/farm/lib/proxy"
)

// Forward connects every connection accepted on a listener (the node's end
// of an SSH remote forward, or a loopback listener for a unix:// node) to
// the transfer registry, and counts the bytes both ways: Bytes' in is node
// to registry (this machine), out is registry to node.
type Forward struct {
	*proxy.Proxy
}

// ServeForward starts forwarding ln to target (host:port on this machine).
func ServeForward(ln net.Listener, target string) *Forward {
	return &Forward{proxy.Serve(ln, func() (net.Conn, error) {
		// A failed dial closes the node's connection: its push fails
		// saying so.
		return net.DialTimeout("tcp", target, 10*time.Second)
	})}
}

// Port is the listener's port.
func (f *Forward) Port() int {
	if a, ok := f.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	_, p, _ := net.SplitHostPort(f.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
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
