package main

import (
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/stage/stagetest"
)

// runApp runs farm-plan in-process the way stage.Main does, and returns
// the exit code, stdout and stderr.
func runApp(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return stagetest.Run(newApp(strings.NewReader(stdin)), append([]string{"farm-plan"}, args...))
}

const (
	// Each ends with farm-nodes' end record, as a whole stream does.
	x86 = `{"v":1,"kind":"node","name":"x86","uri":"ssh://x86","native":["linux/amd64"],"emulated":["linux/arm64"],"cpus":4}`
	arm = `{"v":1,"kind":"node","name":"arm","uri":"ssh://arm","native":["aarch64"],"emulated":[],"cpus":4}`
	end = `{"v":1,"kind":"end","stage":"farm-nodes"}`
)

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		jobs   int
		stderr string
	}{
		{name: "default targets", stdin: x86 + "\n" + arm + "\n", code: stage.ExitOK, jobs: 2},
		{name: "platform spellings", stdin: x86 + "\n" + arm + "\n", args: []string{"--platforms", "x86_64,linux/arm64/v8,arm64"}, code: stage.ExitOK, jobs: 2},
		{name: "short flag and affinity", stdin: x86 + "\n", args: []string{"-p", "arm64", "--affinity", "quay.io/me/app"}, code: stage.ExitOK, jobs: 1},
		{name: "explain", stdin: x86 + "\n" + arm + "\n", args: []string{"--explain"}, code: stage.ExitOK, jobs: 2,
			stderr: "farm-plan: linux/arm64 -> arm: the only native candidate"},
		{name: "emulation never", stdin: x86 + "\n", args: []string{"--platforms", "arm64", "--emulation=never"}, code: stage.ExitFailed,
			stderr: "farm-plan: cannot place linux/arm64: no reachable node builds it natively, and --emulation=never forbids emulating it on x86\n"},
		{name: "empty input", code: stage.ExitFailed,
			stderr: "farm-plan: no node records on stdin; farm-plan reads what farm-nodes writes: farm-nodes | farm-plan\n"},
		{name: "wrong kind", stdin: x86 + "\n" + `{"v":1,"kind":"job","platform":"linux/amd64"}` + "\n", code: stage.ExitFailed,
			stderr: "farm-plan: stdin line 2: a job record; farm-plan reads node records (did you pipe farm-plan into itself?)\n"},
		{name: "unknown platform", stdin: x86 + "\n", args: []string{"--platforms", "amd64,amd46"}, code: stage.ExitUsage,
			stderr: "farm-plan: --platforms: platform \"amd46\": unknown architecture \"amd46\"\nTry 'farm-plan --help' for more information.\n"},
		{name: "no platform", stdin: x86 + "\n", args: []string{"--platforms", ","}, code: stage.ExitUsage,
			stderr: "farm-plan: --platforms: no platform given\n"},
		{name: "bad emulation", stdin: x86 + "\n", args: []string{"--emulation", "only"}, code: stage.ExitUsage,
			stderr: "farm-plan: --emulation \"only\": want auto or never\n"},
		{name: "unknown flag", args: []string{"--platform", "amd64"}, code: stage.ExitUsage,
			stderr: "farm-plan: flag provided but not defined: -platform\n"},
		{name: "argument", args: []string{"nodes.jsonl"}, code: stage.ExitUsage,
			stderr: "farm-plan: unexpected argument \"nodes.jsonl\": farm-plan reads node records on stdin\n"},
		{name: "bad log level", stdin: x86 + "\n", args: []string{"--log-level", "loud"}, code: stage.ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdin := tt.stdin
			if stdin != "" {
				stdin += end + "\n"
			}
			code, stdout, stderr := runApp(t, stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tt.code, stderr)
			}
			if got := strings.Count(stdout, `"kind":"job"`); got != tt.jobs {
				t.Errorf("%d job records, want %d:\n%s", got, tt.jobs, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr:\n%s\nwant it to hold:\n%s", stderr, tt.stderr)
			}
			if code == stage.ExitUsage && stdout != "" {
				t.Errorf("a usage error wrote to stdout:\n%s", stdout)
			}
		})
	}
}

// TestHelp: --help teaches the tool: what it does, every flag with its
// default, and pipelines to copy.
func TestHelp(t *testing.T) {
	code, stdout, _ := runApp(t, "", "--help")
	if code != stage.ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"farm-plan reads node records",
		"A node that builds a platform natively always beats one that emulates it",
		"--platforms PLATFORMS, -p PLATFORMS", "(default: every platform a reachable node builds natively)",
		"--emulation MODE", `(default: "auto")`,
		"--affinity KEY", "(default: none",
		"--explain", "(default: false)",
		"--log-level", "--log-format",
		"Examples:",
		"farm-nodes | farm-plan | farm-build -t IMG . | farm-manifest",
		"farm-nodes | farm-plan > plan.jsonl",
		"farm-build -t IMG . < plan.jsonl",
		"Exit status: 0 planned, 1 bad input or planning failed, 2 usage error.",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q:\n%s", want, stdout)
		}
	}
}

// farm-nodes died after two records: exit 1, no job, the error and the end
// record on stdout.
func TestTruncatedInput(t *testing.T) {
	code, stdout, stderr := runApp(t, x86+"\n"+arm+"\n")
	if code != stage.ExitFailed || strings.Contains(stdout, `"kind":"job"`) ||
		!strings.Contains(stderr, "farm-plan: stdin ended after line 2 without an end record") ||
		!strings.HasSuffix(stdout, `{"v":1,"kind":"end","stage":"farm-plan"}`+"\n") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
