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
	// A node nobody can reach: if farm-build tried to build, its error
	// record would say "building linux/amd64 on nowhere".
	job := func(plat string) string {
		return `{"v":1,"kind":"job","platform":"` + plat + `","node":{"name":"nowhere","uri":"ssh://root@127.0.0.1:1/x.sock"}}` + "\n"
	}
	end := `{"v":1,"kind":"end","stage":"farm-plan"}` + "\n"
	const ended = `{"v":1,"kind":"end","stage":"farm-build"}`
	tests := []struct {
		name, in  string
		wantErr   string
		wantLines []string // substrings, one per output line
	}{
		{name: "empty", in: "", wantErr: "no job records on stdin",
			wantLines: []string{`"error":"farm-build: no job records on stdin`, ended}},
		{name: "only the end", in: end, wantErr: "no job records on stdin",
			wantLines: []string{`"error":"farm-build: no job records on stdin`, ended}},
		{name: "only an upstream error", in: upstream + "\n" + end, wantErr: "no job records on stdin",
			wantLines: []string{`"stage":"farm-plan"`, `no job records on stdin`, ended}},
		{name: "wrong kind", in: upstream + "\n" + `{"v":1,"kind":"node","name":"x"}` + "\n", wantErr: "stdin line 2: a node record",
			wantLines: []string{`"stage":"farm-plan"`, `"line":2`, ended}},
		{name: "garbage", in: "\x00\x01\n", wantErr: "stdin line 1: invalid JSON",
			wantLines: []string{`"line":1`, ended}},
		// The plan's stage died after two jobs: nothing is built.
		{name: "truncated plan", in: upstream + "\n" + job("linux/amd64") + job("linux/arm64"), wantErr: "stdin ended after line 3 without an end record",
			wantLines: []string{`"stage":"farm-plan"`, `"error":"farm-build: stdin ended after line 3 without an end record`, ended}},
		// One platform twice, in any spelling: nothing is built.
		{name: "a platform twice", in: job("linux/arm64") + job("linux/amd64") + job("linux/aarch64") + end,
			wantErr:   "stdin line 3: a second job for linux/arm64 (the first is on line 1)",
			wantLines: []string{`"line":3`, ended}},
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
