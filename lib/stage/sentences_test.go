package stage

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestSentences(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(newSentences(&b, "farm-build", slog.LevelInfo, 0))
	log.Info("build context ready", "dir", "ctx dir", "files", 3, "bytes", int64(3400))
	log.Warn("node unreachable", "node", "lab-1", "error", errors.New("probing lab-1: no answer"))
	log.With("platform", "linux/arm64").Error("giving up")
	log.Debug("not shown")
	want := `farm-build: build context ready (dir "ctx dir", files 3, 3.4kB)
farm-build: warning: node unreachable (node lab-1): probing lab-1: no answer
farm-build: error: giving up (platform linux/arm64)
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		line  string
		width int
		want  []string
	}{
		{"short", 80, []string{"short"}},
		{"farm-build: local podman service (uri unix:///tmp/x.sock)", 30,
			[]string{"farm-build: local podman", "  service (uri", "  unix:///tmp/x.sock)"}},
		{"abcdefghijklmnopqrstuvwxyz", 11, []string{"abcdefghij", "  klmnopqr", "  stuvwxyz"}},
		{"no width", 0, []string{"no width"}},
	} {
		got := Wrap(tc.line, tc.width)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tc.line, tc.width, got, tc.want)
		}
		for _, l := range got {
			if tc.width > 0 && len([]rune(l)) >= tc.width {
				t.Errorf("Wrap(%q, %d): %q is not shorter than the width", tc.line, tc.width, l)
			}
		}
	}
}
