package buildctx

import (
	"fmt"
	"io"
	"os"
)

// chunkSize is the unit of the in-memory store. Fixed-size chunks, unlike
// one growing slice, never copy what was written and never need twice the
// archive's size while growing.
const chunkSize = 1 << 20

// spillStore keeps what is written in memory up to limit bytes and in an
// unlinked temporary file beyond. It is written by one goroutine and read
// (through readerAt) only once writing is over.
type spillStore struct {
	limit  int64
	size   int64
	chunks [][]byte
	file   *os.File
	// removeOnClose names the spill file when it could not be unlinked
	// while open (Windows).
	removeOnClose string
	err           error
}

func (s *spillStore) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.file == nil && s.size+int64(len(p)) > s.limit {
		if err := s.spill(); err != nil {
			s.err = err
			return 0, err
		}
	}
	if s.file != nil {
		n, err := s.file.Write(p)
		s.size += int64(n)
		if err != nil {
			s.err = fmt.Errorf("writing build context to %s: %w", s.file.Name(), err)
			return n, s.err
		}
		return n, nil
	}
	n := len(p)
	for len(p) > 0 {
		last := len(s.chunks) - 1
		if last < 0 || len(s.chunks[last]) == chunkSize {
			// Small contexts stay small: append grows the last chunk's
			// capacity as needed, up to chunkSize.
			s.chunks = append(s.chunks, nil)
			last++
		}
		k := min(chunkSize-len(s.chunks[last]), len(p))
		s.chunks[last] = append(s.chunks[last], p[:k]...)
		p = p[k:]
	}
	s.size += int64(n)
	return n, nil
}

// spill moves what is in memory to a temporary file and directs further
// writes there.
func (s *spillStore) spill() error {
	f, err := os.CreateTemp("", "farm-buildctx-*.tar.gz")
	if err != nil {
		return fmt.Errorf("creating a temporary file for a build context over %d MiB: %w", s.limit>>20, err)
	}
	// Unlinked at once, the file cannot outlive the process even if it is
	// killed; systems that refuse get it removed by Close.
	if os.Remove(f.Name()) != nil {
		s.removeOnClose = f.Name()
	}
	for _, c := range s.chunks {
		if _, err := f.Write(c); err != nil {
			f.Close()
			return fmt.Errorf("writing build context to %s: %w", f.Name(), err)
		}
	}
	s.chunks = nil
	s.file = f
	return nil
}

func (s *spillStore) discard() {
	if s.file != nil {
		s.file.Close()
		if s.removeOnClose != "" {
			os.Remove(s.removeOnClose)
		}
	}
	s.chunks = nil
}

func (s *spillStore) readerAt() io.ReaderAt {
	if s.file != nil {
		return s.file
	}
	return chunkReader{chunks: s.chunks, size: s.size}
}

// chunkReader reads the in-memory store; it holds no state, so concurrent
// ReadAt calls are safe.
type chunkReader struct {
	chunks [][]byte
	size   int64
}

func (c chunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("build context: negative offset %d", off)
	}
	n := 0
	for n < len(p) && off < c.size {
		k := copy(p[n:], c.chunks[off/chunkSize][off%chunkSize:])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
