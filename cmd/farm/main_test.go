package main

import (
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/pipeline"
	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/stage/stagetest"
)

// runApp runs farm in-process the way main and stage.Main do (the command
// word taken off first), and returns the exit code, stdout and stderr.
func runApp(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	args, word := pipeline.Subcommand(append([]string{"farm"}, args...))
	return stagetest.Run(newApp(word), args)
}

// --print: each flag goes to its stage, and the pipeline is printed, not run.
func TestPrint(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "-t", "IMG", "--print"}, "farm-nodes | farm-plan | farm-build -t IMG . | farm-manifest\n"},
		{[]string{"build", "--farm", "lab", "--platforms", "linux/amd64,linux/arm64", "-t", "r/app:1", "--cleanup", "--print", "ctx"},
			"farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t r/app:1 --cleanup --preconnect-farm lab ctx | farm-manifest\n"},
		// Build args may hold commas: one flag, one value.
		{[]string{"build", "-t", "IMG", "--build-arg", "A=1,2", "--build-arg", "B=x y", "--print"},
			"farm-nodes | farm-plan | farm-build -t IMG --build-arg A=1,2 --build-arg 'B=x y' . | farm-manifest\n"},
		{[]string{"build", "-t", "IMG", "--plan-with", "pin.sh linux/arm64=lab-3", "--print"},
			"farm-nodes | pin.sh linux/arm64=lab-3 | farm-build -t IMG . | farm-manifest\n"},
	} {
		code, stdout, stderr := runApp(t, tt.args...)
		if code != stage.ExitOK || stdout != tt.want || stderr != "" {
			t.Errorf("%q: exit %d\nstdout: %s\nwant:   %s\nstderr: %s", tt.args, code, stdout, tt.want, stderr)
		}
	}
}

// Usage errors exit 2 with a message naming farm and a pointer to --help,
// and write nothing on stdout.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"unknown command", []string{"biuld", "-t", "IMG"},
			"farm: unknown command \"biuld\": farm has one, farm build [options] [CONTEXT]\nTry 'farm --help' for more information.\n"},
		{"no command", []string{"-t", "IMG", "--print"},
			"farm: no command: farm has one, farm build [options] [CONTEXT]\nTry 'farm --help' for more information.\n"},
		{"unknown flag", []string{"build", "--platform", "amd64"},
			"farm: flag provided but not defined: -platform\n"},
		{"flag for a replaced stage", []string{"build", "-t", "IMG", "--platforms", "arm64", "--plan-with", "cat"},
			"farm: --platforms goes to farm-plan, which --plan-with replaces: give it to your command instead\n"},
		{"two contexts", []string{"build", "-t", "IMG", "a", "b"},
			"farm: want at most one CONTEXT directory, got 2 arguments\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runApp(t, tt.args...)
			if code != stage.ExitUsage {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, stage.ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr:\n%s\nwant it to hold:\n%s", stderr, tt.stderr)
			}
			if stdout != "" {
				t.Errorf("a usage error wrote to stdout:\n%s", stdout)
			}
		})
	}
}

// farm alone says what it does.
func TestNoArguments(t *testing.T) {
	code, stdout, _ := runApp(t)
	if code != stage.ExitOK || !strings.Contains(stdout, "farm build [--farm NAME] [--platforms PLATFORMS] -t NAME[:TAG] [options] [CONTEXT]") {
		t.Errorf("exit %d\nstdout:\n%s", code, stdout)
	}
}

// Without --print the pipeline runs: the last stage's output is farm's
// stdout, and the exit code is the pipeline's, as with set -o pipefail. Every
// stage is a command of the test's own (the *-with flags): no podman.
func TestRun(t *testing.T) {
	stages := func(build, manifest string) []string {
		return []string{"build", "-t", "IMG", "--nodes-with", "echo one", "--plan-with", "cat",
			"--build-with", build, "--manifest-with", manifest}
	}
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"records flow", stages("sed s/one/two/", "cat"), stage.ExitOK, "two\n"},
		{"last stage fails", stages("cat", "cat >/dev/null; exit 3"), 3, ""},
		{"middle stage fails", stages("cat >/dev/null; exit 4", "cat"), 4, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runApp(t, tt.args...)
			if code != tt.code || stdout != tt.stdout {
				t.Errorf("exit %d, want %d\nstdout: %q, want %q\nstderr:\n%s", code, tt.code, stdout, tt.stdout, stderr)
			}
		})
	}
}
