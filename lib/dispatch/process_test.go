package dispatch

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/progress"
	"github.com/farm-build/farm/lib/record"
)

// Input that never reaches a node: what Process writes and returns.
func TestProcessBadInput(t *testing.T) {
	upstream := `{"v":1,"kind":"error","stage":"farm-plan","error":"no node for linux/s390x","platform":"linux/s390x"}`
	tests := []struct {
		name, in  string
		wantErr   string
		wantLines []string // substrings, one per output line
	}{
		{name: "empty", in: "", wantErr: "no job records on stdin",
			wantLines: []string{`"error":"farm-build: no job records on stdin`}},
		{name: "only an upstream error", in: upstream + "\n", wantErr: "no job records on stdin",
			wantLines: []string{`"stage":"farm-plan"`, `no job records on stdin`}},
		{name: "wrong kind", in: upstream + "\n" + `{"v":1,"kind":"node","name":"x"}` + "\n", wantErr: "stdin line 2: a node record",
			wantLines: []string{`"stage":"farm-plan"`, `"line":2`}},
		{name: "garbage", in: "\x00\x01\n", wantErr: "stdin line 1: invalid JSON",
			wantLines: []string{`"line":1`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRunner(Config{Stage: "farm-build", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Progress: progress.NewPlain(io.Discard)})
			defer r.Close()
			var out bytes.Buffer
			err := r.Process(context.Background(), strings.NewReader(tc.in), record.NewEncoder(&out))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != len(tc.wantLines) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tc.wantLines), out.String())
			}
			for i, want := range tc.wantLines {
				if !strings.Contains(lines[i], want) {
					t.Errorf("line %d %q lacks %q", i+1, lines[i], want)
				}
			}
		})
	}
}
