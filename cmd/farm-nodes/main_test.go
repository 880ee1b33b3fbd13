package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/stage/stagetest"
)

// runApp runs farm-nodes in-process the way stage.Main does, and returns
// the exit code, stdout and stderr.
func runApp(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return stagetest.Run(newApp(), append([]string{"farm-nodes"}, args...))
}

// farm writes a containers.conf with the fake nodes as connections and a
// farm "f" of them all, and points CONTAINERS_CONF at it.
func farm(t *testing.T, nodes map[string]string) {
	t.Helper()
	var b strings.Builder
	var names []string
	for name, uri := range nodes {
		fmt.Fprintf(&b, "[engine.service_destinations.%s]\nuri = %q\n", name, uri)
		names = append(names, fmt.Sprintf("%q", name))
	}
	fmt.Fprintf(&b, "[farms]\ndefault = \"f\"\n[farms.list]\nf = [%s]\n", strings.Join(names, ","))
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINERS_CONF", conf)
	t.Setenv("PODMAN_CONNECTIONS_CONF", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the node info cache
}

// reportsEmulation makes the fake say what it emulates, as podman 5.6
// does: the probe then reads no binfmt_misc through a shell.
func reportsEmulation(s *podmantest.Server) {
	s.Info["host"] = map[string]any{"os": "linux", "arch": "amd64", "cpus": 2, "emulatedArchitectures": []string{"linux/arm64"}}
}

func TestFarmNodes(t *testing.T) {
	up := podmantest.New(t)
	reportsEmulation(up)
	down := podmantest.New(t)
	down.Close()
	farm(t, map[string]string{"up": up.URI, "down": down.URI})
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"records", []string{"--farm", "f", "--emulate", "up=linux/riscv64"}, stage.ExitOK,
			[]string{`"name":"up"`, `"native":["linux/amd64"]`, `linux/riscv64`, `"name":"down"`}, "node unreachable"},
		{"table", []string{"--node", "up", "--format", "table"}, stage.ExitOK, []string{"NAME", "up", "linux/amd64"}, ""},
		{"none answers", []string{"--node", "down"}, stage.ExitFailed, []string{`"name":"down"`}, "none of the 1 nodes answered"},
		{"an argument", []string{"x"}, stage.ExitUsage, nil, `unexpected argument "x"`},
		{"bad format", []string{"--format", "yaml"}, stage.ExitUsage, nil, "want json, table or wide"},
		{"bad emulate", []string{"--emulate", "up"}, stage.ExitUsage, nil, "want NODE=PLATFORM"},
		{"node and farm", []string{"--node", "up", "--farm", "f"}, stage.ExitUsage, nil, ""},
		{"unknown flag", []string{"--nope"}, stage.ExitUsage, nil, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runApp(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}

func TestFarmNodesLocal(t *testing.T) {
	fake := podmantest.New(t)
	reportsEmulation(fake)
	t.Setenv("CONTAINER_HOST", fake.URI)
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the node info cache
	code, stdout, stderr := runApp(t, "--local")
	if code != stage.ExitOK || !strings.Contains(stdout, `"name":"local"`) {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	fake.Close()
	if code, _, stderr := runApp(t, "--local"); code != stage.ExitFailed || !strings.Contains(stderr, "--local:") {
		t.Errorf("a dead CONTAINER_HOST: exit %d\n%s", code, stderr)
	}
}
