package stage

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// testApp looks like a stage: a description in the help's conventions and
// flags of every kind completion cares about.
func testApp() *cli.App {
	return &cli.App{
		Name:      "farm-test",
		Usage:     "test the generators",
		UsageText: "farm-test [--node NAME] < in.jsonl",
		Description: `farm-test reads records on stdin, like binfmt_misc *not* emphasised.

Second paragraph with [brackets] and a_b.

Exit status: 0 ok, 1 failed.

Environment:
   CONTAINER_HOST      this machine's podman service
                       (default: podman's socket)
   FARM_LOG_LEVEL      --log-level

Examples:
   farm-nodes | farm-plan > plan.jsonl; farm-build -t IMG . < plan.jsonl

   # a comment
   farm-test --node lab-1`,
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "node", Usage: "use `NAME`; repeatable (default: every one)"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "the `PATH` to read"},
			&cli.StringFlag{Name: "tag", Aliases: []string{"t"}, Usage: "a `NAME`"},
			&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "verify certificates"},
			&cli.StringFlag{Name: "secret", Hidden: true},
		}, CommonFlags()...),
		HideHelpCommand: true,
	}
}

func TestMan(t *testing.T) {
	page, err := Man(testApp())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`.TH FARM-TEST 1 "" "farm `,
		".SH NAME\nfarm-test \\- test the generators",
		".SH SYNOPSIS\n.nf\nfarm\\-test [\\-\\-node NAME] < in.jsonl\n.fi",
		".SH DESCRIPTION", "binfmt_misc *not* emphasised", "[brackets] and a_b",
		".SH OPTIONS", "--node NAME [ --node NAME ]", "(default: every one)",
		`--log-level LEVEL`, `(default: "info") [$FARM_LOG_LEVEL]`, "verify certificates (default: true)",
		".SH EXIT STATUS\n0 ok, 1 failed.",
		".SH ENVIRONMENT", "CONTAINER_HOST\\fP\nthis machine's podman service (default: podman's socket)",
		".SH EXAMPLES", "farm-nodes | farm-plan > plan.jsonl; farm-build -t IMG . < plan.jsonl\n\n# a comment\nfarm-test --node lab-1",
		".SH SEE ALSO", "farm-nodes", "farm-manifest", "containers.conf",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q:\n%s", want, page)
		}
	}
	for _, bad := range []string{"Usage", "GLOBAL OPTIONS", "secret", "help, h", "FARM-USAGE-MARK", "Examples:", "Environment:"} {
		if strings.Contains(page, bad) {
			t.Errorf("man page holds %q:\n%s", bad, page)
		}
	}
	// Sections in man(7) order.
	last := -1
	for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"} {
		i := strings.Index(page, ".SH "+sec+"\n")
		if i < last {
			t.Errorf("section %s out of order", sec)
		}
		last = i
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command(groff, "-man", "-ww", "-z", "-Tutf8")
		cmd.Stdin = strings.NewReader(page)
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff -ww: %v\n%s", err, out)
		}
	}
}

func TestGenerateArgs(t *testing.T) {
	for _, args := range [][]string{{"--generate-completion", "zsh"}, {"--generate-completion=zsh"}} {
		out, ok, err := Generate(testApp(), args)
		if !ok || err != nil || !strings.HasPrefix(out, "#compdef farm-test\n") {
			t.Errorf("%q: ok %v, err %v, out %.40q", args, ok, err, out)
		}
	}
	_, ok, err := Generate(testApp(), []string{"--generate-completion", "ksh"})
	var ue UsageError
	if !ok || !errors.As(err, &ue) {
		t.Errorf("ksh: ok %v, err %v; want a usage error", ok, err)
	}
	if _, ok, _ := Generate(testApp(), []string{"--node", "x"}); ok {
		t.Error("an ordinary command line was taken for a generator")
	}
	if out, ok, err := Generate(testApp(), []string{"--generate-man"}); !ok || err != nil || !strings.Contains(out, ".SH OPTIONS") {
		t.Errorf("--generate-man: ok %v, err %v", ok, err)
	}
}

// TestValueHints: a hint is for a stage or for every stage, and says
// something completion knows.
func TestValueHints(t *testing.T) {
	for key, hint := range valueHints {
		if stage, _, ok := strings.Cut(key, "/"); ok && !contains(Stages, stage) {
			t.Errorf("hint %q: no stage %q", key, stage)
		}
		kind, _, _ := strings.Cut(hint, ":")
		if !contains([]string{"words", "files", "dirs", "connections", "farms", "none", "name"}, kind) {
			t.Errorf("hint %q: unknown kind %q", key, kind)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fakePodman puts a podman on PATH that lists connections lab-1 and lab-2.
func fakePodman(t *testing.T) string {
	dir := t.TempDir()
	script := "#!/bin/sh\n[ \"$1 $2 $3\" = 'system connection list' ] && printf 'lab-1\\nlab-2\\n'\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "podman"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to test the bash completion")
	}
	script, err := Completion(testApp(), "bash")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "farm-test")
	os.WriteFile(file, []byte(script), 0o644)
	// words: the command line split as bash splits it (at "=" too); the
	// last word is the one being completed.
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"farm-test", "--lo"}, "--log-level --log-format"},
		{[]string{"farm-test", "--log-level", ""}, "debug info warn error"},
		{[]string{"farm-test", "--log-level", "=", "w"}, "warn"},
		{[]string{"farm-test", "--log-format", "="}, "auto text json"},
		{[]string{"farm-test", "--node", ""}, "lab-1 lab-2"},
		{[]string{"farm-test", "--tls"}, "--tls-verify"},
		{[]string{"farm-test", "--se"}, ""}, // hidden
		{[]string{"farm-test", "-"}, "--node --file --tag --tls-verify --log-level --log-format --help -h -f -t"},
	}
	for _, tt := range tests {
		quoted := make([]string, len(tt.words))
		for i, w := range tt.words {
			quoted[i] = "'" + w + "'"
		}
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", `source "$1"
COMP_WORDS=(`+strings.Join(quoted, " ")+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1))
_farm_test; echo "${COMPREPLY[*]}"`, "bash", file)
		cmd.Env = append(os.Environ(), "PATH="+fakePodman(t))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tt.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); !sameWords(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.words, got, tt.want)
		}
	}
}

func sameWords(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	if len(x) != len(y) {
		return false
	}
	for _, w := range x {
		if !contains(y, w) {
			return false
		}
	}
	return true
}

func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Fatal("zsh is needed to test the zsh completion (scripts/farm-lab up installs it)")
	}
	script, _ := Completion(testApp(), "zsh")
	for _, want := range []string{"#compdef farm-test\n", "'*--node=[use NAME]:node:_farm-test_connections'",
		"'(-f --file)--file=[the PATH to read]:file:_files'", "'(--log-level)--log-level=[log messages at or above this LEVEL on stderr\\: debug, info, warn, e...]:log-level:(debug info warn error)'",
		"compdef _farm-test farm-test"} {
		if !strings.Contains(script, want) {
			t.Errorf("zsh script lacks %q:\n%s", want, script)
		}
	}
	file := filepath.Join(t.TempDir(), "_farm-test")
	os.WriteFile(file, []byte(script), 0o644)
	if out, err := exec.Command(zsh, "-n", file).CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v\n%s", err, out)
	}
}

func TestFishCompletion(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Fatal("fish is needed to test the fish completion (scripts/farm-lab up installs it)")
	}
	script, _ := Completion(testApp(), "fish")
	file := filepath.Join(t.TempDir(), "farm-test.fish")
	os.WriteFile(file, []byte(script), 0o644)
	cmd := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C 'farm-test --log-level '; complete -C 'farm-test --node '; complete -C 'farm-test --tl'`, file)
	cmd.Env = append(os.Environ(), "PATH="+fakePodman(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("fish did not finish")
	}
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out.String())
	}
	for _, want := range []string{"debug\t", "error\t", "lab-1\t", "lab-2\t", "--tls-verify\tverify certificates"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("fish completions lack %q:\n%s", want, out.String())
		}
	}
}

func TestParseLevelTakesPodmansNames(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "trace": slog.LevelDebug, "info": slog.LevelInfo,
		"warn": slog.LevelWarn, "warning": slog.LevelWarn, "WARNING": slog.LevelWarn,
		"error": slog.LevelError, "fatal": slog.LevelError, "panic": slog.LevelError,
	} {
		if got, err := parseLevel(in); err != nil || got != want {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
	var ue UsageError
	if _, err := parseLevel("loud"); !errors.As(err, &ue) {
		t.Errorf("an unknown level must be a usage error, got %v", err)
	}
}

func TestJSONLinesWritesSlogRecords(t *testing.T) {
	var buf bytes.Buffer
	Report("farm-x", Usagef("--bad %q", "value"), jsonLines{&buf})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the message and the hint, got %q", buf.String())
	}
	for _, l := range lines {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Level != "ERROR" || !strings.Contains(rec.Msg, "farm-x") {
			t.Errorf("line %q: %+v %v", l, rec, err)
		}
	}
}
