package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/stage/stagetest"
)

// runApp runs farm-build in-process the way stage.Main does, and returns
// the exit code, stdout and stderr.
func runApp(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return stagetest.Run(newApp(strings.NewReader(stdin)), append([]string{name}, args...))
}

// end is the end record of a complete plan.
const end = `{"v":1,"kind":"end","stage":"farm-plan"}` + "\n"

func TestFarmBuild(t *testing.T) {
	node, local := podmantest.New(t), podmantest.New(t)
	t.Setenv("CONTAINER_HOST", local.URI)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM scratch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	job := `{"v":1,"kind":"job","platform":"linux/amd64","node":{"name":"n","uri":"` + node.URI + `","native":["linux/amd64"],"cgroup_manager":"cgroupfs"},"alternatives":[]}` + "\n" + end
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"a build, pulled back", job, []string{"-t", "localhost/app:1", "--transfer", "archive", "--build-arg", "A=1", "--label", "k=v", "--pull=true", dir},
			stage.ExitOK, `"ref":"localhost/app:1-linux-amd64"`, "[linux/amd64@n] STEP 1/1"},
		{"no jobs", "", []string{"-t", "app", dir}, stage.ExitFailed, `"error":"farm-build: no job records on stdin`, ""},
		{"no context", job, []string{"-t", "app", filepath.Join(dir, "nope")}, stage.ExitFailed, `preparing the build context`, ""},
		{"refused flag", job, []string{"-t", "app", "--platform", "linux/arm64"}, stage.ExitUsage, "", "choose them with farm-plan --platforms"},
		{"a digest as the tag", job, []string{"-t", "app@sha256:" + strings.Repeat("a", 64)}, stage.ExitUsage, "", "a digest cannot be a build's name"},
		{"two contexts", job, []string{"-t", "app", "a", "b"}, stage.ExitUsage, "", "want at most one CONTEXT"},
		{"bad pull", job, []string{"-t", "app", "--pull", "sometimes"}, stage.ExitUsage, "", `--pull "sometimes": want always, missing, never or newer`},
		{"bad format", job, []string{"-t", "app", "--format", "tar"}, stage.ExitUsage, "", `unrecognized image type "tar"`},
		{"dns without a network", job, []string{"-t", "app", "--network", "none", "--dns", "1.1.1.1"}, stage.ExitUsage, "", "the --dns option cannot be used with --network=none"},
		{"missing secret", job, []string{"-t", "app", "--secret", "id=tok,src=/nonexistent"}, stage.ExitUsage, "", "--secret id=tok: "},
		{"bad transfer", job, []string{"-t", "app", "--transfer", "carrier-pigeon"}, stage.ExitUsage, "", "--transfer"},
		{"bad archive format", job, []string{"-t", "app", "--archive-format", "zip"}, stage.ExitUsage, "", "want docker-archive or oci-archive"},
		{"bad progress", job, []string{"-t", "app", "--progress", "fancy"}, stage.ExitUsage, "", "want auto, tty or plain"},
		{"no tag", job, nil, stage.ExitUsage, "", "tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runApp(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}

// --push: the node pushes to the registry of -t; nothing comes back here,
// so no local service is needed.
func TestFarmBuildPush(t *testing.T) {
	node := podmantest.New(t)
	t.Setenv("CONTAINER_HOST", "unix:///nonexistent/podman.sock")
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "auth.json"))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM scratch\n"), 0o600)
	job := `{"v":1,"kind":"job","platform":"linux/amd64","node":{"name":"n","uri":"` + node.URI + `","native":["linux/amd64"],"cgroup_manager":"systemd"},"alternatives":[]}` + "\n" + end
	code, stdout, stderr := runApp(t, job, "-t", "127.0.0.1:5000/app:1", "--push", "--tls-verify=false", "--cleanup", dir)
	if code != stage.ExitOK || !strings.Contains(stdout, `"transfer":"push"`) {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}
