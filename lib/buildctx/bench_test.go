//go:build unix

package buildctx

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/pgzip"
)

// BenchmarkCompress measures the whole pipeline (walk, tar, compression) on
// a generated context of about 200 MB (20 MB with -short), half text-like
// source files, half incompressible blobs, and reports MB/s of tar stream
// and the compressed size in percent of it.
func BenchmarkCompress(b *testing.B) {
	size := 200 << 20
	if testing.Short() {
		size = 20 << 20
	}
	dir := b.TempDir()
	generateContext(b, dir, size)

	type compressor struct {
		name string
		new  func(w io.Writer) (io.WriteCloser, error)
	}
	compressors := []compressor{
		{"none", func(w io.Writer) (io.WriteCloser, error) { return nopCloser{w}, nil }},
		{"gzip-BestSpeed", func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, gzip.BestSpeed) }},
		{"gzip-Default", func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, gzip.DefaultCompression) }},
		{"pgzip-BestSpeed", func(w io.Writer) (io.WriteCloser, error) { return newPgzip(w, pgzip.BestSpeed, pgzipBlocks()) }},
		{"pgzip-2", func(w io.Writer) (io.WriteCloser, error) { return newPgzip(w, 2, pgzipBlocks()) }},
		{"pgzip-Default", func(w io.Writer) (io.WriteCloser, error) { return newPgzip(w, pgzip.DefaultCompression, pgzipBlocks()) }},
	}
	for _, c := range compressors {
		b.Run(c.name, func(b *testing.B) {
			h := defaultHooks()
			h.compress = c.new
			var out countingWriter
			out.w = io.Discard
			var raw int64
			cpu0 := cpuTime(b)
			for b.Loop() {
				out.n = 0
				st, err := writeTo(context.Background(), &out, Options{Dir: dir}, h)
				if err != nil {
					b.Fatal(err)
				}
				raw = st.RawBytes
			}
			// CPU time tells the cost apart from the wall time, which on a
			// busy machine says more about the neighbours.
			b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			b.SetBytes(raw)
			b.ReportMetric(100*float64(out.n)/float64(raw), "%size")
		})
	}
}

// cpuTime returns the user and system time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// generateContext writes about size bytes of files under dir: text-like
// files from 1 KB to 128 KB built from a fixed vocabulary (compressing
// like source code does, to about 30% at BestSpeed) and random blobs from
// 256 KB to 4 MB (like images or archives, incompressible).
func generateContext(tb testing.TB, dir string, size int) {
	tb.Helper()
	rng := xorshift(42)
	vocab := make([]string, 4096)
	for i := range vocab {
		n := 2 + rng.next()%9
		var sb strings.Builder
		for range n {
			sb.WriteByte(byte('a' + rng.next()%26))
		}
		vocab[i] = sb.String()
	}
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write("Containerfile", []byte(cfBody))
	text, blobs := 0, 0
	for i := 0; text < size/2; i++ {
		n := 1<<10 + int(rng.next()%(127<<10))
		var sb strings.Builder
		sb.Grow(n + 128)
		var recent [16]string
		for line := 0; sb.Len() < n; line++ {
			// Code repeats itself: half the lines are earlier lines again.
			if line >= len(recent) && rng.next()%2 == 0 {
				sb.WriteString(recent[rng.next()%uint64(len(recent))])
				continue
			}
			var lb strings.Builder
			lb.WriteString(strings.Repeat("\t", int(rng.next()%4)))
			for w := 3 + rng.next()%8; w > 0; w-- {
				// Skewed towards the first words, as identifiers in code are.
				lb.WriteString(vocab[(rng.next()%16)*(rng.next()%16)*(1+rng.next()%4)])
				lb.WriteByte(" .(,_"[rng.next()%5])
			}
			lb.WriteString("\n")
			recent[line%len(recent)] = lb.String()
			sb.WriteString(lb.String())
		}
		write(fmt.Sprintf("src/pkg%02d/mod%02d/file%04d.go", i%37, i%11, i), []byte(sb.String()))
		text += sb.Len()
	}
	for i := 0; blobs < size/2; i++ {
		n := 256<<10 + int(rng.next()%(3840<<10))
		write(fmt.Sprintf("assets/a%02d/blob%03d.bin", i%5, i), randomBytes(int64(i), n))
		blobs += n
	}
}

type xorshiftState struct{ x uint64 }

func xorshift(seed uint64) *xorshiftState { return &xorshiftState{seed*0x9E3779B97F4A7C15 + 1} }

func (s *xorshiftState) next() uint64 {
	s.x ^= s.x << 13
	s.x ^= s.x >> 7
	s.x ^= s.x << 17
	return s.x
}
