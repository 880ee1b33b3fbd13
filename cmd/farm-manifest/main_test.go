package main

import (
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/stage"
	"github.com/farm-build/farm/lib/stage/stagetest"
)

// runApp runs farm-manifest in-process the way stage.Main does, and
// returns the exit code, stdout and stderr.
func runApp(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return stagetest.Run(newApp(strings.NewReader(stdin)), append([]string{name}, args...))
}

func TestFarmManifest(t *testing.T) {
	fake := podmantest.New(t)
	t.Setenv("CONTAINER_HOST", fake.URI)
	t.Setenv("TMPDIR", t.TempDir()) // the list locks
	amd, arm := podmantest.BuildID("amd"), podmantest.BuildID("arm")
	fake.AddImage(podmantest.Image{ID: amd, Arch: "amd64"})
	fake.AddImage(podmantest.Image{ID: arm, Arch: "arm64"})
	img := func(plat, id string) string {
		return `{"v":1,"kind":"image","platform":"` + plat + `","node":"n","id":"` + id + `","tag":"localhost/app:1","ref":"localhost/app:1-x","transfer":"archive"}` + "\n"
	}
	pushedImg := `{"v":1,"kind":"image","platform":"linux/amd64","node":"n","id":"` + amd + `","digest":"sha256:` + strings.Repeat("a", 64) + `","tag":"127.0.0.1:1/app:1","ref":"127.0.0.1:1/app@sha256:` + strings.Repeat("a", 64) + `","transfer":"push"}` + "\n"
	failed := `{"v":1,"kind":"error","stage":"farm-build","platform":"linux/arm64","node":"n","error":"RUN false"}` + "\n"
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"a local list", img("linux/amd64", amd) + img("linux/arm64", arm), nil, stage.ExitOK,
			[]string{`"kind":"manifest"`, `"name":"localhost/app:1"`, `"platform":"linux/arm64"`}, "manifest list ready"},
		{"named and pushed", img("linux/amd64", amd), []string{"--push", "127.0.0.1:5000/app:1", "other:2"}, stage.ExitOK,
			[]string{`"name":"other:2"`, `"pushed":"docker://127.0.0.1:5000/app:1"`}, ""},
		{"a failure upstream", img("linux/amd64", amd) + failed, nil, stage.ExitFailed,
			[]string{`"kind":"error"`}, "linux/arm64 (RUN false) failed upstream"},
		{"allow partial", img("linux/amd64", amd) + failed, []string{"--allow-partial"}, stage.ExitOK,
			[]string{`"kind":"error"`, `"kind":"manifest"`}, "making a partial list"},
		{"no tag to name the list", strings.Replace(img("linux/amd64", amd), `"tag":"localhost/app:1",`, "", 1), nil, stage.ExitUsage,
			nil, "name the list: farm-manifest NAME"},
		{"--push elsewhere after farm-build --push", pushedImg, []string{"--push", "docker://quay.io/me/app:1"}, stage.ExitUsage,
			nil, "the images were pushed by farm-build --push, so the list is made where they are, docker://127.0.0.1:1/app:1"},
		{"a mix of pushed and pulled", pushedImg + img("linux/arm64", arm), []string{"x:1"}, stage.ExitFailed, nil, "run farm-build with or without --push for all"},
		{"no records", "", nil, stage.ExitFailed, nil, "no image records"},
		{"two names", img("linux/amd64", amd), []string{"a", "b"}, stage.ExitUsage, nil, "want at most one NAME"},
		{"bad format", img("linux/amd64", amd), []string{"--format", "v1"}, stage.ExitUsage, nil, "want oci or v2s2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.stdin
			if in != "" {
				in += `{"v":1,"kind":"end","stage":"farm-build"}` + "\n"
			}
			code, stdout, stderr := runApp(t, in, tc.args...)
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
