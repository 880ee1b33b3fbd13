package transfer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// echoBack serves one behaviour per connection: read everything the client
// sends until it half-closes, then answer with reply bytes and close.
func echoBack(t *testing.T, reply []byte) (addr string, got chan []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got = make(chan []byte, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				data, _ := io.ReadAll(c)
				got <- data
				c.Write(reply)
			}()
		}
	}()
	return l.Addr().String(), got
}

func TestForwardCountsBothWaysAndPassesHalfClose(t *testing.T) {
	reply := bytes.Repeat([]byte("r"), 300_000)
	target, got := echoBack(t, reply)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := ServeForward(ln, target)
	defer f.Close()

	sent := bytes.Repeat([]byte("s"), 1_000_000)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", f.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.Write(sent)
			// The registry must see the end of the request while the
			// answer can still come back: a half-close, not a close.
			c.(*net.TCPConn).CloseWrite()
			back, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(back, reply) {
				t.Errorf("reply: %d bytes, err %v", len(back), err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 3; i++ {
		if data := <-got; len(data) != len(sent) {
			t.Errorf("target got %d bytes, want %d", len(data), len(sent))
		}
	}
	f.Close()
	in, out := f.Bytes()
	if in != 3*int64(len(sent)) || out != 3*int64(len(reply)) {
		t.Errorf("Bytes() = %d in, %d out; want %d, %d", in, out, 3*len(sent), 3*len(reply))
	}
}

func TestForwardCloseCutsOpenConnections(t *testing.T) {
	target, _ := echoBack(t, nil) // never answers before the client half-closes
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := ServeForward(ln, target)
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /v2/ HTTP/1.1\r\n")) // and then nothing: a stuck push
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() { f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a connection that never ends")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the node's connection should be closed, read gave %v", err)
	}
	if _, err := net.DialTimeout("tcp", f.Addr().String(), time.Second); err == nil {
		t.Error("the forward still accepts after Close")
	}
}

func TestStablePorts(t *testing.T) {
	a := StablePorts("lab-1/linux/amd64")
	if b := StablePorts("lab-1/linux/amd64"); !equalInts(a, b) {
		t.Fatalf("not stable: %v then %v", a, b)
	}
	if b := StablePorts("lab-1/linux/arm64"); a[0] == b[0] {
		t.Errorf("two platforms of one node start at the same port %d", a[0])
	}
	for _, p := range a {
		if p < stablePortBase || p >= stablePortBase+stablePortRange {
			t.Errorf("port %d outside %d-%d", p, stablePortBase, stablePortBase+stablePortRange-1)
		}
	}
}

func TestListenStableTakesTheNextPortThenAny(t *testing.T) {
	key := "node/linux/amd64"
	ports := StablePorts(key)
	busy := map[string]bool{}
	var asked []string
	listen := func(network, addr string) (net.Listener, error) {
		asked = append(asked, addr)
		if busy[addr] {
			return nil, errors.New("ssh: tcpip-forward request denied by peer")
		}
		return fakeListener{addr}, nil
	}
	ln, err := ListenStable(listen, key)
	if err != nil || ln.Addr().String() != addr(ports[0]) {
		t.Fatalf("got %v, %v; want %s", ln, err, addr(ports[0]))
	}
	busy[addr(ports[0])] = true
	if ln, _ := ListenStable(listen, key); ln.Addr().String() != addr(ports[1]) {
		t.Errorf("with the first port taken: %v, want %s", ln.Addr(), addr(ports[1]))
	}
	for _, p := range ports {
		busy[addr(p)] = true
	}
	if ln, _ := ListenStable(listen, key); ln.Addr().String() != "127.0.0.1:0" {
		t.Errorf("with every stable port taken: %v, want any port", ln.Addr())
	}
	busy["127.0.0.1:0"] = true // forwarding refused altogether
	asked = nil
	if _, err := ListenStable(listen, key); err == nil {
		t.Error("no error when every listen is refused")
	}
	if len(asked) != len(ports)+1 {
		t.Errorf("asked %v", asked)
	}
}

func addr(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

type fakeListener struct{ addr string }

func (f fakeListener) Accept() (net.Conn, error) { return nil, errors.New("fake") }
func (f fakeListener) Close() error              { return nil }
func (f fakeListener) Addr() net.Addr            { return fakeAddr(f.addr) }

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
