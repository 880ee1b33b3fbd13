package stage

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
)

func TestSentences(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(newSentences(&b, "farm-build", slog.LevelInfo))
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
