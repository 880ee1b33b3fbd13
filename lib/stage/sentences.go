package stage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/docker/go-units"
)

// sentences is the log handler for a person at a terminal: one line a
// message, as podman writes them, "farm-nodes: warning: node unreachable
// (node lab-1): probing lab-1: ...", with no timestamps and no key=value.
// --log-format text or json, or a stderr that is not a terminal, gives the
// machine formats instead.
type sentences struct {
	mu    *sync.Mutex
	w     io.Writer
	name  string
	level slog.Leveler
	attrs []slog.Attr
	// width is the terminal's: longer messages are wrapped (0: never).
	width int
}

func newSentences(w io.Writer, name string, level slog.Leveler, width int) *sentences {
	return &sentences{mu: &sync.Mutex{}, w: w, name: name, level: level, width: width}
}

func (h *sentences) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *sentences) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &c
}

// WithGroup keeps the attributes flat: a person reads them, not a parser.
func (h *sentences) WithGroup(string) slog.Handler { return h }

func (h *sentences) Handle(_ context.Context, r slog.Record) error {
	attrs := append([]slog.Attr{}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	var b strings.Builder
	b.WriteString(h.name + ": ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	b.WriteString(r.Message)
	var details, errs []string
	for _, a := range attrs {
		if v := a.Value.Resolve(); a.Key == "error" || a.Key == "err" {
			errs = append(errs, v.String())
		} else if a.Key != "" {
			details = append(details, phrase(a.Key, v))
		}
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	for _, e := range errs {
		b.WriteString(": " + e)
	}
	line := b.String()
	if h.width > 0 {
		line = strings.Join(Wrap(line, h.width), "\n")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, line+"\n")
	return err
}

// Wrap cuts a line for a terminal width columns wide into lines shorter
// than that (a line that fills the last column makes some terminals wrap
// early), at spaces where it can, the lines after the first indented by
// two spaces. Columns are counted in runes.
func Wrap(line string, width int) []string {
	limit := width - 1
	if limit < 8 {
		return []string{line}
	}
	var out []string
	rest := []rune(line)
	for len(rest) > limit {
		cut := limit
		for i := limit; i > limit/4; i-- {
			if rest[i] == ' ' {
				cut = i
				break
			}
		}
		out = append(out, strings.TrimRight(string(rest[:cut]), " "))
		rest = append([]rune("  "), []rune(strings.TrimLeft(string(rest[cut:]), " "))...)
	}
	return append(out, string(rest))
}

// phrase is one attribute in words: sizes in units, the rest "key value".
func phrase(key string, v slog.Value) string {
	if key == "bytes" || strings.HasSuffix(key, "_bytes") || key == "size" {
		if v.Kind() == slog.KindInt64 {
			return strings.TrimSuffix(strings.ReplaceAll(key, "_", " "), "bytes") + units.HumanSize(float64(v.Int64()))
		}
	}
	s := v.String()
	if v.Kind() == slog.KindString && (s == "" || strings.ContainsAny(s, " ,()")) {
		s = fmt.Sprintf("%q", s)
	}
	return strings.ReplaceAll(key, "_", " ") + " " + s
}
