// Command linkem is the lab's link emulator: a TCP proxy that makes the
// connections through it cross a link of a given rate and round-trip delay,
// as a node behind a slow WAN link would be. scripts/farm-lab shape puts it
// in front of a node's sshd.
//
// The kernel here has neither sch_netem nor sch_prio (see scripts/lab/
// NOTES.md), so tc can limit the rate of loopback traffic but cannot delay
// it; a proxy can do both. Each direction is one link shared by every
// connection: a chunk of bytes leaves after the chunks before it, at the
// rate (serialization), and arrives half the round trip later
// (propagation). A bounded queue per connection pushes back on the sender,
// as a full link does.
//
//	linkem -listen 127.0.0.1:2222 -target 127.0.0.1:3222 -rate 50mbit -delay 20ms
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to listen on (host:port)")
	target := flag.String("target", "", "address to forward to (host:port)")
	rate := flag.String("rate", "", "link rate in bits per second, each way: 50mbit, 800kbit, 1gbit")
	delay := flag.Duration("delay", 0, "round-trip delay added, half each way: 20ms")
	flag.Parse()
	bps, err := parseRate(*rate)
	if err != nil || *listen == "" || *target == "" || *delay < 0 {
		fmt.Fprintf(os.Stderr, "usage: linkem -listen HOST:PORT -target HOST:PORT -rate RATE -delay DURATION (%v)\n", err)
		os.Exit(2)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("linkem: %s -> %s at %s bit/s, %s round trip", *listen, *target, *rate, *delay)
	up, down := &link{bytesPerSec: bps / 8}, &link{bytesPerSec: bps / 8}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
		<-sigs
		l.Close()
		os.Exit(0)
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, *target, up, down, *delay/2)
	}
}

// parseRate reads tc-style rates: a number of bits per second with an
// optional kbit, mbit or gbit suffix (decimal multiples, as tc's).
func parseRate(s string) (float64, error) {
	mult := 1.0
	for suffix, m := range map[string]float64{"kbit": 1e3, "mbit": 1e6, "gbit": 1e9} {
		if strings.HasSuffix(strings.ToLower(s), suffix) {
			s, mult = s[:len(s)-len(suffix)], m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: want e.g. 50mbit", s)
	}
	return v * mult, nil
}

// link is one direction of the emulated link.
type link struct {
	mu          sync.Mutex
	free        time.Time // when the link has sent everything queued so far
	bytesPerSec float64
}

// send reserves the link for n bytes and says when they have left it.
func (l *link) send(n int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := time.Now()
	if l.free.After(start) {
		start = l.free
	}
	l.free = start.Add(time.Duration(float64(n) / l.bytesPerSec * float64(time.Second)))
	return l.free
}

func serve(c net.Conn, target string, up, down *link, oneWay time.Duration) {
	defer c.Close()
	t, err := net.Dial("tcp", target)
	if err != nil {
		log.Printf("linkem: %v", err)
		return
	}
	defer t.Close()
	done := make(chan struct{}, 2)
	go func() { pipe(t, c, up, oneWay); done <- struct{}{} }()
	go func() { pipe(c, t, down, oneWay); done <- struct{}{} }()
	<-done
	<-done
}

type chunk struct {
	b      []byte
	arrive time.Time
}

// queueChunks bounds what one connection has in the link: 32 chunks of
// 16 KiB, more than a 50 Mbit/s link holds in 10 ms, so the link, not the
// queue, sets the pace, while a sender still feels a full link.
const (
	chunkSize   = 16 << 10
	queueChunks = 32
)

func pipe(dst, src net.Conn, l *link, oneWay time.Duration) {
	q := make(chan chunk, queueChunks)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], l.send(n).Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.arrive))
		if _, err := dst.Write(c.b); err != nil {
			// The far end is gone: stop reading, so the sender sees it too.
			src.Close()
			for range q {
			}
			return
		}
	}
	// The sender finished: pass the end of the stream on once the link
	// has delivered everything before it.
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	if err := dst.Close(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		log.Printf("linkem: %v", err)
	}
}
