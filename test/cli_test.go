package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/stage"
)

type outcome struct {
	stdout, stderr string
	code           int
}

// runStage runs a built stage with stdin, in dir, with env added.
func runStage(t *testing.T, dir, stdin string, env []string, name string, args ...string) outcome {
	t.Helper()
	cmd := exec.Command(bin(t, name), args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		o.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return o
}

// TestStdoutHoldsOnlyRecords: whatever goes wrong, a stage writes nothing
// but records on stdout (the next stage parses it); the explanation goes to
// stderr, prefixed with the stage's name, and the exit code says what kind
// of failure it was. No lab needed: every case fails before a node is used.
func TestStdoutHoldsOnlyRecords(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	os.WriteFile(conf, []byte(`[engine.service_destinations.dead]
uri = "ssh://root@127.0.0.1:1/run/podman/podman.sock"
identity = "`+filepath.Join(dir, "no-such-key")+`"
`), 0o644)
	empty := filepath.Join(dir, "empty.conf")
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM scratch\n"), 0o644)
	// Nothing of the user's own podman set-up may leak in.
	env := []string{"CONTAINERS_CONF=" + conf, "HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "CONTAINER_HOST=",
		"FARM_KNOWN_HOSTS=" + filepath.Join(dir, "known_hosts"), "SSH_AUTH_SOCK="}
	node := `{"v":1,"kind":"node","name":"x","uri":"ssh://x/run/podman.sock","native":["linux/amd64"],"emulated":[],"cpus":1}` + "\n"
	upstream := `{"v":1,"kind":"error","stage":"farm-build","platform":"linux/arm64","error":"RUN failed"}` + "\n"
	end := `{"v":1,"kind":"end"}` + "\n"

	tests := []struct {
		name   string
		stage  string
		args   []string
		stdin  string
		env    []string
		code   int
		stderr string // a part of it
		kinds  []string
	}{
		{name: "nodes: bad format", stage: "farm-nodes", args: []string{"--format", "xml"}, code: stage.ExitUsage, stderr: "farm-nodes: --format \"xml\": want json, table or wide"},
		{name: "nodes: unknown flag", stage: "farm-nodes", args: []string{"--nodes", "a"}, code: stage.ExitUsage, stderr: "Try 'farm-nodes --help'"},
		{name: "nodes: argument", stage: "farm-nodes", args: []string{"lab"}, code: stage.ExitUsage, stderr: "farm-nodes takes only flags"},
		{name: "nodes: no connections", stage: "farm-nodes", env: []string{"CONTAINERS_CONF=" + empty}, code: stage.ExitFailed, stderr: "podman system connection add"},
		{name: "nodes: unknown node", stage: "farm-nodes", args: []string{"--node", "nosuch"}, code: stage.ExitFailed, stderr: `no system connection named "nosuch" (known: dead)`},
		{name: "nodes: unknown farm", stage: "farm-nodes", args: []string{"--farm", "nosuch"}, code: stage.ExitFailed, stderr: `no farm named "nosuch"`},
		{name: "nodes: --node and --farm", stage: "farm-nodes", args: []string{"--node", "dead", "--farm", "lab"}, code: stage.ExitUsage, stderr: "--node and --farm exclude each other"},
		{name: "nodes: unreachable", stage: "farm-nodes", args: []string{"--node", "dead", "--log-format", "json"}, code: stage.ExitFailed,
			stderr: "none of the 1 nodes answered", kinds: []string{"node", "end"}},
		{name: "nodes: bad log level", stage: "farm-nodes", args: []string{"--log-level", "loud"}, code: stage.ExitUsage, stderr: "want debug, info, warn or error"},

		{name: "plan: garbage", stage: "farm-plan", stdin: "not json\n", code: stage.ExitFailed, stderr: "line 1", kinds: []string{"error", "end"}},
		{name: "plan: no input", stage: "farm-plan", code: stage.ExitFailed, stderr: "no node records on stdin", kinds: []string{"error", "end"}},
		{name: "plan: upstream error", stage: "farm-plan", stdin: upstream + node + end, args: []string{"-p", "amd64"}, code: stage.ExitOK, kinds: []string{"error", "job", "end"}},
		{name: "plan: bad platform", stage: "farm-plan", stdin: node, args: []string{"-p", "amd46"}, code: stage.ExitUsage, stderr: "unknown architecture"},

		{name: "build: no tag", stage: "farm-build", stdin: "", code: stage.ExitUsage, stderr: "tag"},
		{name: "build: --platform", stage: "farm-build", args: []string{"-t", "x", "--platform", "linux/arm64"}, code: stage.ExitUsage, stderr: "farm-plan --platforms"},
		{name: "build: garbage", stage: "farm-build", args: []string{"-t", "127.0.0.1:5000/x:1", "--push"}, stdin: "not json\n", code: stage.ExitFailed,
			stderr: "line 1", kinds: []string{"error", "end"}},
		{name: "build: wrong kind", stage: "farm-build", args: []string{"-t", "127.0.0.1:5000/x:1", "--push"}, stdin: node, code: stage.ExitFailed,
			stderr: "stdin line 1: a node record; farm-build reads job records", kinds: []string{"error", "end"}},
		{name: "build: no jobs", stage: "farm-build", args: []string{"-t", "127.0.0.1:5000/x:1", "--push"}, code: stage.ExitFailed,
			stderr: "no job records on stdin", kinds: []string{"error", "end"}},

		{name: "manifest: garbage", stage: "farm-manifest", stdin: "not json\n", code: stage.ExitFailed, stderr: "line 1", kinds: []string{"end"}},
		{name: "manifest: wrong kind", stage: "farm-manifest", stdin: node, code: stage.ExitFailed, stderr: "stdin line 1: a node record", kinds: []string{"end"}},
		{name: "manifest: only errors", stage: "farm-manifest", stdin: upstream + end, code: stage.ExitFailed, stderr: "linux/arm64 (RUN failed)", kinds: []string{"error", "end"}},
		{name: "manifest: truncated", stage: "farm-manifest", stdin: upstream, code: stage.ExitFailed, stderr: "stdin ended after line 1 without an end record", kinds: []string{"error", "end"}},
		{name: "manifest: bad format", stage: "farm-manifest", args: []string{"--format", "v2"}, code: stage.ExitUsage, stderr: "want oci or v2s2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := runStage(t, dir, tt.stdin, append(env, tt.env...), tt.stage, tt.args...)
			if o.code != tt.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", o.code, tt.code, o.stderr)
			}
			if !strings.Contains(o.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, o.stderr)
			}
			if o.code != 0 && !strings.Contains(o.stderr, tt.stage+": ") {
				t.Errorf("stderr does not name the stage:\n%s", o.stderr)
			}
			var kinds []string
			sc := bufio.NewScanner(strings.NewReader(o.stdout))
			sc.Buffer(nil, record.MaxLine)
			for sc.Scan() {
				r, err := record.Decode(sc.Bytes())
				if err != nil {
					t.Fatalf("stdout holds a line that is not a record: %q (%v)", sc.Text(), err)
				}
				kinds = append(kinds, r.Kind())
			}
			if strings.Join(kinds, ",") != strings.Join(tt.kinds, ",") {
				t.Errorf("stdout records %v, want %v:\n%s", kinds, tt.kinds, o.stdout)
			}
		})
	}
}

// TestHelp: every stage's --help (on stdout, exit 0) teaches it: a
// description, exit status, the environment it reads, examples including a
// saved plan replayed, and every option with its default.
func TestHelp(t *testing.T) {
	for _, s := range stage.Stages {
		t.Run(s, func(t *testing.T) {
			o := runStage(t, t.TempDir(), "", nil, s, "--help")
			if o.code != 0 || o.stderr != "" {
				t.Fatalf("exit %d, stderr %q", o.code, o.stderr)
			}
			for _, want := range []string{"NAME:\n   " + s + " - ", "USAGE:", "DESCRIPTION:", "Exit status: ", "Environment:\n",
				"FARM_LOG_LEVEL", "Examples:\n", "plan.jsonl", "OPTIONS:\n"} {
				if !strings.Contains(o.stdout, want) {
					t.Errorf("--help lacks %q", want)
				}
			}
			if strings.Contains(o.stdout, "COMMANDS:") || strings.Contains(o.stdout, "GLOBAL OPTIONS") {
				t.Errorf("--help shows a command list for a tool without subcommands")
			}
			// Every option says what it does and, unless it is required or
			// help/version, its default.
			_, opts, _ := strings.Cut(o.stdout, "\nOPTIONS:\n")
			for _, line := range strings.Split(strings.TrimRight(opts, "\n"), "\n") {
				line = strings.TrimSpace(line)
				if strings.HasPrefix(line, "--help") || strings.HasPrefix(line, "--version") {
					continue
				}
				if !strings.Contains(line, "(default: ") && !strings.Contains(line, "required)") {
					t.Errorf("option without a default: %s", line)
				}
				if names, _, _ := strings.Cut(line, "  "); strings.Contains(names+" ", " value ") {
					t.Errorf("option without a named placeholder: %s", line)
				}
			}
			// Environment variables the stage reads are documented.
			want := map[string][]string{
				"farm-nodes":    {"CONTAINERS_CONF", "CONTAINER_SSHKEY", "CONTAINER_HOST", "SSH_AUTH_SOCK"},
				"farm-build":    {"CONTAINER_HOST", "CONTAINER_SSHKEY", "REGISTRY_AUTH_FILE"},
				"farm-manifest": {"CONTAINER_HOST", "REGISTRY_AUTH_FILE"},
			}[s]
			_, env, _ := strings.Cut(o.stdout, "Environment:\n")
			for _, v := range want {
				if !strings.Contains(env, "   "+v+" ") {
					t.Errorf("Environment: lacks %s", v)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, s := range stage.Stages {
		o := runStage(t, t.TempDir(), "", nil, s, "--version")
		if o.code != 0 || !strings.HasPrefix(o.stdout, s+" version ") || !strings.Contains(o.stdout, "podman bindings v4.") {
			t.Errorf("%s --version: exit %d: %q %q", s, o.code, o.stdout, o.stderr)
		}
	}
}

// TestCompletionScripts: the generated completions know each stage's own
// value lists (so the hints in lib/stage name flags that exist).
func TestCompletionScripts(t *testing.T) {
	for s, wants := range map[string][]string{
		"farm-nodes":    {"--format)\n\t\tCOMPREPLY=($(compgen -W 'json table wide'", "--node)\n\t\tCOMPREPLY=($(compgen -W \"$(podman system connection list"},
		"farm-plan":     {"--emulation)\n\t\tCOMPREPLY=($(compgen -W 'auto never'"},
		"farm-build":    {"--pull)\n\t\tCOMPREPLY=($(compgen -W 'missing always never newer'", "--archive-format)\n\t\tCOMPREPLY=($(compgen -W 'docker-archive oci-archive'", "compgen -d"},
		"farm-manifest": {"--format)\n\t\tCOMPREPLY=($(compgen -W 'oci v2s2'"},
	} {
		o := runStage(t, t.TempDir(), "", nil, s, "--generate-completion", "bash")
		for _, w := range wants {
			if !strings.Contains(o.stdout, w) {
				t.Errorf("%s bash completion lacks %q", s, w)
			}
		}
	}
}

// TestDocsCoverEveryOption: each stage's page in docs/ documents every
// option its --help lists, so a new flag cannot go undocumented.
func TestDocsCoverEveryOption(t *testing.T) {
	for _, s := range stage.Stages {
		page, err := os.ReadFile(filepath.Join(root(t), "docs", s+".md"))
		if err != nil {
			t.Errorf("no page for %s: %v", s, err)
			continue
		}
		help := runStage(t, t.TempDir(), "", nil, s, "--help").stdout
		for _, flag := range helpFlags(help) {
			if flag == "--help" || flag == "--version" {
				continue
			}
			if !strings.Contains(string(page), "`"+flag) {
				t.Errorf("docs/%s.md does not document %s", s, flag)
			}
		}
	}
}

// A run that fails before any job starts (here: no Containerfile) says so in
// an error record too, so the end of `farm-build | farm-manifest` learns why.
func TestBuildContextFailureIsAnErrorRecord(t *testing.T) {
	dir := t.TempDir()
	job := `{"v":1,"kind":"job","platform":"linux/amd64","node":{"name":"x","uri":"ssh://x/run/podman.sock"}}` + "\n" +
		`{"v":1,"kind":"end"}` + "\n"
	o := runStage(t, dir, job, []string{"CONTAINER_HOST="}, "farm-build", "-t", "localhost/x:1", dir)
	if o.code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", o.code, o.stderr)
	}
	var rec struct{ Kind, Stage, Error string }
	lines := strings.Split(strings.TrimSpace(o.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("stdout %q: %v", o.stdout, err)
	}
	if rec.Kind != "error" || rec.Stage != "farm-build" || !strings.Contains(rec.Error, "-f PATH") {
		t.Fatalf("want one error record naming the fix, got %q", o.stdout)
	}
	// The stream is complete: it holds the error.
	if len(lines) != 2 || lines[1] != `{"v":1,"kind":"end","stage":"farm-build"}` {
		t.Fatalf("want the error record, then the end record, got %q", o.stdout)
	}
}
