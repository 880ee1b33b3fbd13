//go:build unix

package buildctx

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	storagearchive "github.com/containers/storage/pkg/archive"
)

// TestPodmanExtracts unpacks an archive with the function the node's podman
// service uses on a build's body (containers/storage archive.Untar, in
// pkg/api/handlers/compat/images_build.go) and checks what the builder sees.
func TestPodmanExtracts(t *testing.T) {
	elsewhere := t.TempDir()
	makeTree(t, elsewhere, map[string]string{"Containerfile": cfBody})
	dir := t.TempDir()
	long := strings.Repeat("long-directory-name/", 8) + "ñame-" + strings.Repeat("x", 120)
	makeTree(t, dir, map[string]string{
		".dockerignore":      "secrets\n!secrets/public.pem\n",
		"src/main.go":        "package main\n",
		"src/link":           "link:main.go",
		"secrets/db.pass":    "pw",
		"secrets/public.pem": "pem",
		long:                 "long",
		"empty/":             "",
	})
	if err := os.Link(filepath.Join(dir, "src/main.go"), filepath.Join(dir, "src/hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "src"), 0o750); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := WriteTo(context.Background(), &buf, Options{Dir: dir, Containerfile: filepath.Join(elsewhere, "Containerfile")})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := storagearchive.Untar(&buf, out, &storagearchive.TarOptions{NoLchown: os.Geteuid() != 0}); err != nil {
		t.Fatalf("podman's Untar: %v", err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if read(st.ContainerfileInTar) != cfBody || read("src/main.go") != "package main\n" || read("src/hard") != "package main\n" ||
		read("secrets/public.pem") != "pem" || read(long) != "long" {
		t.Error("content differs after extraction")
	}
	if target, err := os.Readlink(filepath.Join(out, "src/link")); err != nil || target != "main.go" {
		t.Errorf("src/link -> %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(out, "secrets/db.pass")); !os.IsNotExist(err) {
		t.Errorf("secrets/db.pass extracted: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(out, "src")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("src: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(out, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory: %v", err)
	}
	a, _ := os.Stat(filepath.Join(out, "src/main.go"))
	b, _ := os.Stat(filepath.Join(out, "src/hard"))
	if !os.SameFile(a, b) {
		t.Error("hard link extracted as a copy")
	}
}
