package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/stage/stagetest"
)

func runApp(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return stagetest.Run(newApp(strings.NewReader(stdin)), append([]string{"farm-timeline"}, args...))
}

func TestExitCodes(t *testing.T) {
	run, err := os.ReadFile(filepath.Join("..", "..", "lib", "timeline", "testdata", "failover.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run.svg")
	for _, tc := range []struct {
		name          string
		stdin         string
		args          []string
		code          int
		stdout        string // a prefix
		stderr        string
		end           bool // stdout ends with farm-timeline's end record
		drawnToOutput bool
	}{
		{name: "html to stdout", stdin: string(run), code: stage.ExitOK, stdout: "<!DOCTYPE html>"},
		{name: "svg to stdout", stdin: string(run), args: []string{"--format", "svg"}, code: stage.ExitOK, stdout: "<?xml"},
		{name: "pass through", stdin: string(run), args: []string{"-o", out}, code: stage.ExitOK, stdout: `{"v":1,"kind":"image"`, end: true, drawnToOutput: true},
		{name: "nothing to draw", stdin: "{\"v\":1,\"kind\":\"end\"}\n", code: stage.ExitFailed, stderr: "farm-timeline: no image or error record with phase times"},
		{name: "garbage", stdin: "not json\n", args: []string{"-o", out}, code: stage.ExitFailed, stderr: "stdin line 1", end: true, stdout: `{"v":1,"kind":"error"`},
		{name: "bad format", args: []string{"--format", "png"}, code: stage.ExitUsage, stderr: `--format "png": want svg, html or auto`},
		{name: "argument", args: []string{"run.jsonl"}, code: stage.ExitUsage, stderr: `unexpected argument "run.jsonl"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			code, stdout, stderr := runApp(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.HasPrefix(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %.80q, stderr %q; want %d, %q..., %q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
			if end := strings.HasSuffix(stdout, `{"v":1,"kind":"end","stage":"farm-timeline"}`+"\n"); end != tc.end {
				t.Errorf("ends with an end record: %v, want %v", end, tc.end)
			}
			if _, err := os.Stat(out); (err == nil) != tc.drawnToOutput {
				t.Errorf("%s written: %v, want %v", out, err == nil, tc.drawnToOutput)
			}
		})
	}
}
