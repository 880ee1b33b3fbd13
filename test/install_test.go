// Package test holds tests of the built commands that need no lab: the
// install layout, --help and --version, and what each stage writes where.
// They build with `make` (the Makefile's tags and version ldflags).
package test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/farm-build/farm/lib/stage"
)

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// root is the repository root (this package lives in test/).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// make runs make in the repository root and fails the test if it fails.
func runMake(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-s", "--no-print-directory"}, args...)...)
	cmd.Dir = root(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// bin returns the path of a stage built by `make build` (once per run).
func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("make", "-s", "--no-print-directory", "build")
		cmd.Dir = root(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("make build: %v\n%s", buildErr, buildOut)
	}
	return filepath.Join(root(t), "bin", name)
}

// TestInstall: `make install DESTDIR=... PREFIX=/usr` installs the five
// binaries, their man pages and bash, zsh and fish completions, nothing
// else; `make uninstall` removes exactly those files.
func TestInstall(t *testing.T) {
	dest := t.TempDir()
	runMake(t, "install", "DESTDIR="+dest, "PREFIX=/usr")

	var want []string
	for _, s := range stage.Stages {
		want = append(want,
			"usr/bin/"+s,
			"usr/share/man/man1/"+s+".1",
			"usr/share/bash-completion/completions/"+s,
			"usr/share/zsh/site-functions/_"+s,
			"usr/share/fish/vendor_completions.d/"+s+".fish")
	}
	sort.Strings(want)
	got := files(t, dest)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("installed files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	version := regexp.MustCompile(`^(farm(?:-[a-z]+)?) version (\S+) \(commit (\S+), podman bindings (v\S+)\)\n$`)
	// The Makefile stamps the commit (and `git describe` as the version)
	// when it builds in a git checkout.
	commit := "unknown"
	if out, err := exec.Command("git", "-C", root(t), "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	for _, s := range stage.Stages {
		exe := filepath.Join(dest, "usr/bin", s)
		if fi, _ := os.Stat(exe); fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755", exe, fi.Mode().Perm())
		}
		out, err := exec.Command(exe, "--version").Output()
		m := version.FindStringSubmatch(string(out))
		if err != nil || m == nil || m[1] != s || m[3] != commit {
			t.Errorf("%s --version: %v: %q; want NAME version V (commit %s, podman bindings vX)", s, err, out, commit)
		}

		page, err := os.ReadFile(filepath.Join(dest, "usr/share/man/man1", s+".1"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(page), ".TH "+strings.ToUpper(s)+" 1 ") {
			t.Errorf("%s.1 has no .TH header for section 1:\n%.300s", s, page)
		}
		// The page documents every option --help lists.
		help, _ := exec.Command(exe, "--help").Output()
		for _, flag := range helpFlags(string(help)) {
			if !strings.Contains(string(page), `\fB`+flag) {
				t.Errorf("%s.1 does not document %s", s, flag)
			}
		}
		groff, err := exec.LookPath("groff")
		if err != nil {
			t.Fatal("groff is needed to check the man pages (scripts/farm-lab up installs groff-base)")
		}
		cmd := exec.Command(groff, "-man", "-ww", "-z", "-Tutf8")
		cmd.Stdin = bytes.NewReader(page)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff warns about %s.1: %v\n%s", s, err, out)
		}
		bash, _ := os.ReadFile(filepath.Join(dest, "usr/share/bash-completion/completions", s))
		if !strings.Contains(string(bash), "complete -o default -F _"+strings.ReplaceAll(s, "-", "_")+" "+s+"\n") {
			t.Errorf("bash completion for %s does not register itself:\n%s", s, bash)
		}
	}

	runMake(t, "uninstall", "DESTDIR="+dest, "PREFIX=/usr")
	if left := files(t, dest); len(left) > 0 {
		t.Errorf("make uninstall left:\n%s", strings.Join(left, "\n"))
	}
}

// files lists the regular files under dir, relative, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// helpFlags lists the long options of a --help text's OPTIONS section.
func helpFlags(help string) []string {
	_, opts, _ := strings.Cut(help, "\nOPTIONS:\n")
	var out []string
	for _, line := range strings.Split(opts, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "--") {
			out = append(out, strings.TrimSuffix(f[0], ","))
		}
	}
	return out
}
