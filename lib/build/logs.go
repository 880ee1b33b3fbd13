package build

import (
	"io"
	"sync"
)

// LineWriter writes whole log lines from many builds to one stream (stderr)
// without interleaving them.
type LineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLineWriter writes lines to w.
func NewLineWriter(w io.Writer) *LineWriter { return &LineWriter{w: w} }

// Prefix returns a function that writes one line with the prefix, such as
// "[linux/arm64@lab-2] ".
func (l *LineWriter) Prefix(prefix string) func(string) {
	return func(line string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		io.WriteString(l.w, prefix+line+"\n")
	}
}
