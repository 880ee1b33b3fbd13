package proxy

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// An echo server behind the proxy: what goes in comes back, and both
// directions are counted.
func TestProxyCopiesAndCounts(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := Serve(ln, func() (net.Conn, error) { return net.Dial("tcp", echo.Addr().String()) })
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello through the tunnel")
	c.Write(msg)
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != string(msg) {
		t.Fatalf("got %q", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		in, out := p.Bytes()
		if in == int64(len(msg)) && out == int64(len(msg)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bytes in %d out %d, want %d each", in, out, len(msg))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", p.Addr().String()); err == nil {
		t.Fatal("still listening after Close")
	}
}

// A failed dial closes the client's connection instead of leaving it hanging;
// Close cuts connections still open and returns.
func TestProxyDialFailureAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := Serve(ln, func() (net.Conn, error) { return nil, errors.New("node gone") })
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF || n != 0 {
		t.Fatalf("want EOF at once, got %d %v", n, err)
	}
	c.Close()

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	p2 := Serve(ln2, func() (net.Conn, error) { return net.Dial("tcp", held.Addr().String()) })
	c2, _ := net.Dial("tcp", p2.Addr().String())
	defer c2.Close()
	time.Sleep(50 * time.Millisecond) // let the proxy dial
	done := make(chan struct{})
	go func() { p2.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close hung on an open connection")
	}
	p.Close()
}
