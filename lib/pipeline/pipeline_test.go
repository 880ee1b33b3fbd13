package pipeline

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// parse runs farm build's flags over args and returns the pipeline.
func parse(t *testing.T, args ...string) (Pipeline, error) {
	t.Helper()
	var p Pipeline
	var perr error
	app := &cli.App{Name: "farm", Flags: Flags(), DisableSliceFlagSeparator: true,
		Action: func(c *cli.Context) error { p, perr = FromFlags(c); return nil }}
	app.Flags = append(app.Flags, &cli.StringFlag{Name: "log-level", Value: "info"})
	if err := app.Run(append([]string{"farm"}, args...)); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return p, perr
}

func TestFromFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-t", "IMG"}, "farm-nodes | farm-plan | farm-build -t IMG . | farm-manifest"},
		{[]string{"--farm", "lab", "--platforms", "linux/amd64,linux/arm64", "-t", "r/app:1", "--cleanup", "ctx"},
			"farm-nodes --farm lab | farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t r/app:1 --cleanup --preconnect-farm lab ctx | farm-manifest"},
		{[]string{"--node", "a", "--node", "b", "--local", "--node-timeout", "1m", "--node-cache-ttl", "0", "-t", "IMG", "--emulation", "never"},
			"farm-nodes --node a --node b --local --timeout 1m0s --cache-ttl 0s | farm-plan --emulation never | farm-build -t IMG --preconnect a --preconnect b . | farm-manifest"},
		{[]string{"--node", "a", "-t", "IMG", "--build-with", "my-build"}, "farm-nodes --node a | farm-plan | my-build | farm-manifest"},
		{[]string{"-t", "IMG", "--build-arg", "A=1,2", "--build-arg", "B=x y", "-f", "C file", "--layers=false"},
			"farm-nodes | farm-plan | farm-build -t IMG -f 'C file' --build-arg A=1,2 --build-arg 'B=x y' --layers=false . | farm-manifest"},
		{[]string{"-t", "IMG", "--tls-verify=false", "--manifest", "list", "--allow-partial", "--log-level", "debug"},
			"farm-nodes --log-level debug | farm-plan --log-level debug | farm-build -t IMG --tls-verify=false --log-level debug . | farm-manifest list --allow-partial --tls-verify=false --log-level debug"},
		{[]string{"-t", "IMG", "--plan-with", "pin.sh linux/arm64=lab-3", "--log-level", "debug"},
			"farm-nodes --log-level debug | pin.sh linux/arm64=lab-3 | farm-build -t IMG --log-level debug . | farm-manifest --log-level debug"},
		{[]string{"-t", "IMG", "--nodes-with", "cat nodes.jsonl", "--manifest-with", "tee x | farm-manifest"},
			"cat nodes.jsonl | farm-plan | farm-build -t IMG . | tee x | farm-manifest"},
		{[]string{"-t", "IMG", "--build-with", "my-build"}, "farm-nodes | farm-plan | my-build | farm-manifest"},
		{[]string{"-t", "IMG", "--timeline", "run.html", "--manifest-with", "cat"},
			"farm-nodes | farm-plan | farm-build -t IMG . | farm-timeline --output run.html | cat"},
		{[]string{"-t", "it's"}, `farm-nodes | farm-plan | farm-build -t 'it'\''s' . | farm-manifest`},
	} {
		p, err := parse(t, tt.args...)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if got := p.String(); got != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.args, got, tt.want)
		}
	}
}

func TestFromFlagsRefuses(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-t", "IMG", "--platforms", "arm64", "--plan-with", "cat"}, "--platforms goes to farm-plan, which --plan-with replaces: give it to your command instead"},
		{[]string{"-t", "IMG", "--farm", "lab", "--nodes-with", "cat"}, "--farm goes to farm-nodes, which --nodes-with replaces: give it to your command instead"},
		{[]string{"-t", "IMG", "a", "b"}, "want at most one CONTEXT directory, got 2 arguments"},
	} {
		if _, err := parse(t, tt.args...); err == nil || err.Error() != tt.want {
			t.Errorf("%q: error %v, want %q", tt.args, err, tt.want)
		}
	}
}

// Every flag has a stage to go to, and the stages' own flags are named as
// those stages name them.
func TestEveryFlagIsRouted(t *testing.T) {
	for _, f := range Flags() {
		name := f.Names()[0]
		r := routeOf(name)
		if len(r.stages) == 0 && name != "print" && name[len(name)-5:] != "-with" {
			t.Errorf("--%s goes nowhere", name)
		}
	}
	for name := range routes {
		found := name == "log-level" || name == "log-format"
		for _, f := range Flags() {
			found = found || f.Names()[0] == name
		}
		if !found {
			t.Errorf("a route for --%s, which farm build does not have", name)
		}
	}
}

func TestSubcommand(t *testing.T) {
	for _, tt := range []struct {
		args       []string
		want, word string
	}{
		{[]string{"farm"}, "farm --help", ""},
		{[]string{"farm", "build", "-t", "x", "."}, "farm -t x .", "build"},
		{[]string{"farm", "--version"}, "farm --version", ""},
		{[]string{"farm", "biuld", "-t", "x"}, "farm -t x", "biuld"},
	} {
		args, word := Subcommand(tt.args)
		got := Pipeline{{Name: args[0], Args: args[1:]}}.String()
		if got != tt.want || word != tt.word {
			t.Errorf("%q: %q %q, want %q %q", tt.args, got, word, tt.want, tt.word)
		}
	}
	if CheckSubcommand("build") != nil || CheckSubcommand("biuld") == nil || CheckSubcommand("") == nil {
		t.Error("only build is a command")
	}
}

func TestExit(t *testing.T) {
	for _, tt := range []struct {
		codes []int
		want  int
	}{{[]int{0, 0, 0, 0}, 0}, {[]int{1, 0, 1, 1}, 1}, {[]int{0, 2, 0, 0}, 2}, {[]int{130, 130, 130, 130}, 130}, {[]int{0, 0, 0, 1}, 1}} {
		if got := Exit(tt.codes); got != tt.want {
			t.Errorf("Exit(%v) = %d, want %d", tt.codes, got, tt.want)
		}
	}
}

// Run connects the stages and reports each one's exit code.
func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	p := Pipeline{{Name: Nodes, Shell: "printf 'a\\nb\\n'"}, {Name: Plan, Shell: "tr a-z A-Z"}, {Name: Build, Shell: "cat; echo oops >&2; exit 3"}, {Name: Manifest, Shell: "cat"}}
	codes, err := Run(context.Background(), p, Options{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "A\nB\n" || errb.String() != "oops\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}
	if Exit(codes) != 3 || codes[3] != 0 {
		t.Errorf("codes %v", codes)
	}
}

// Cancelling the context signals every stage once and waits for them all.
func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	p := Pipeline{{Name: Nodes, Shell: "sleep 30"}, {Name: Plan, Shell: "exec sleep 30"}}
	start := time.Now()
	codes, err := Run(ctx, p, Options{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second || codes[1] != 143 {
		t.Errorf("codes %v after %s, want SIGTERM (143) soon", codes, time.Since(start))
	}
}

func TestRunMissingStage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Run(context.Background(), Pipeline{{Name: Nodes}}, Options{BinDir: t.TempDir()})
	if err == nil || err.Error() != "farm-nodes is not beside farm nor on PATH: install all of farm's commands (make install)" {
		t.Errorf("error %v", err)
	}
}
