//go:build unix

package buildctx

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const cfBody = "FROM scratch\nCOPY . /\n"

// makeTree creates files under dir. Keys are slash paths; a trailing "/"
// makes a directory, a value "link:T" a symlink to T, anything else a file
// with that content (mode 0644).
func makeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		v := files[k]
		switch {
		case strings.HasSuffix(k, "/"):
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(v, "link:"):
			if err := os.Symlink(strings.TrimPrefix(v, "link:"), p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type entry struct {
	hdr  *tar.Header
	body string
}

type archive struct {
	names   []string // in stream order
	entries map[string]entry
	stats   Stats
	warns   []string
	raw     []byte // compressed
}

func (a *archive) has(name string) bool { _, ok := a.entries[name]; return ok }

// readArchive decompresses with compress/gzip (not pgzip), reads the tar
// stream and checks what must hold for every entry of every archive.
func readArchive(t *testing.T, data []byte) *archive {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	a := &archive{entries: map[string]entry{}, raw: data}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("tar body of %s: %v", hdr.Name, err)
		}
		name := hdr.Name
		trimmed := strings.TrimSuffix(name, "/")
		switch {
		case name == "" || path.IsAbs(name) || filepath.IsAbs(name):
			t.Errorf("entry %q: not a relative path", name)
		case path.Clean(trimmed) != trimmed || trimmed == ".":
			t.Errorf("entry %q: not clean", name)
		case slices.Contains(strings.Split(trimmed, "/"), ".."):
			t.Errorf("entry %q: contains ..", name)
		}
		if (hdr.Typeflag == tar.TypeDir) != strings.HasSuffix(name, "/") {
			t.Errorf("entry %q: type %c and trailing slash disagree", name, hdr.Typeflag)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("entry %q: owner %d:%d %q:%q, want 0:0 without names", name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		if _, dup := a.entries[name]; dup {
			t.Errorf("entry %q: twice in the archive", name)
		}
		a.names = append(a.names, name)
		a.entries[name] = entry{hdr: hdr, body: string(body)}
	}
	// Reading to the end checks the gzip trailer's CRC and length.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		t.Fatalf("gzip trailer: %v", err)
	}
	return a
}

func testHooks() hooks { return defaultHooks() }

// run archives with WriteTo's code path and reads the result back.
func run(t *testing.T, opts Options, h hooks) (*archive, error) {
	t.Helper()
	var warns []string
	opts.Warn = func(msg string) { warns = append(warns, msg) }
	var buf bytes.Buffer
	st, err := writeTo(context.Background(), &buf, opts, h)
	if err != nil {
		return nil, err
	}
	a := readArchive(t, buf.Bytes())
	a.stats = st
	a.warns = warns
	if st.RawBytes <= 0 || st.RawBytes%512 != 0 {
		t.Errorf("RawBytes = %d, want a positive multiple of 512", st.RawBytes)
	}
	if !a.has(st.ContainerfileInTar) {
		t.Errorf("ContainerfileInTar %q is not in the archive %q", st.ContainerfileInTar, a.names)
	}
	return a, nil
}

func mustRun(t *testing.T, opts Options) *archive {
	t.Helper()
	a, err := run(t, opts, testHooks())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestIgnoreFiles(t *testing.T) {
	base := map[string]string{
		"Containerfile":        cfBody,
		"main.go":              "package main",
		"README.md":            "readme",
		"NOTES.md":             "notes",
		".env":                 "TOKEN=1",
		"secret.env":           "TOKEN=2",
		"id_rsa":               "-----BEGIN",
		"tls/server.key":       "key",
		"tls/server.crt":       "crt",
		"deep/a/b/c/x.key":     "key",
		"deep/a/b/c/y.txt":     "txt",
		"secrets/db.pass":      "pw",
		"secrets/public.pem":   "pem",
		"secrets/sub/t.txt":    "t",
		"node_modules/m/i.js":  "js",
		"cache/x/keep":         "keep",
		"cache/x/drop":         "drop",
		"key(1).pem":           "k",
		"a+b":                  "plus",
		"aab":                  "aab",
		"docs/Containerfile":   "not the one",
		"build/Containerfile":  cfBody,
		"build/other.txt":      "o",
		"build/ignored.txt":    "i",
		"weird name #1.txt":    "w",
		"unicodé/ñ.txt":        "u",
		"logs/2024/01/app.log": "log",
	}
	tests := []struct {
		name          string
		extra         map[string]string // added to base
		containerfile string
		want          []string // must be in the archive
		absent        []string // must not be
		wantCF        string
	}{
		{
			name:   "no ignore file sends everything",
			want:   []string{"Containerfile", ".env", "id_rsa", "secrets/", "secrets/db.pass", "node_modules/m/i.js"},
			wantCF: "Containerfile",
		},
		{
			name:   "dockerignore secrets",
			extra:  map[string]string{".dockerignore": ".env\nid_rsa\n*.env\n"},
			want:   []string{"Containerfile", ".dockerignore", "main.go"},
			absent: []string{".env", "id_rsa", "secret.env"},
		},
		{
			name: "containerignore preferred over dockerignore",
			extra: map[string]string{
				".containerignore": "id_rsa\n",
				".dockerignore":    "main.go\n",
			},
			want:   []string{"main.go", ".containerignore", ".dockerignore"},
			absent: []string{"id_rsa"},
		},
		{
			name:   "exception brings a file back",
			extra:  map[string]string{".dockerignore": "*.md\n!README.md\n"},
			want:   []string{"README.md"},
			absent: []string{"NOTES.md"},
		},
		{
			name:   "later pattern overrides an exception",
			extra:  map[string]string{".dockerignore": "*.md\n!*.md\nNOTES.md\n"},
			want:   []string{"README.md"},
			absent: []string{"NOTES.md"},
		},
		{
			name:   "double star",
			extra:  map[string]string{".dockerignore": "**/*.key\n"},
			want:   []string{"tls/server.crt", "deep/a/b/c/y.txt", "deep/a/b/c/"},
			absent: []string{"tls/server.key", "deep/a/b/c/x.key"},
		},
		{
			name:   "directory pattern excludes the whole tree",
			extra:  map[string]string{".dockerignore": "secrets\nnode_modules/\n"},
			want:   []string{"main.go"},
			absent: []string{"secrets/", "secrets/db.pass", "secrets/public.pem", "secrets/sub/", "secrets/sub/t.txt", "node_modules/", "node_modules/m/i.js"},
		},
		{
			name:  "exception inside an excluded directory",
			extra: map[string]string{".dockerignore": "secrets\n!secrets/public.pem\n"},
			want:  []string{"secrets/public.pem"},
			// Like podman: the excluded directory itself gets no entry.
			absent: []string{"secrets/", "secrets/db.pass", "secrets/sub/t.txt"},
		},
		{
			name:   "double star exception reaches into excluded directories",
			extra:  map[string]string{".dockerignore": "cache\nsecrets\n!**/keep\n"},
			want:   []string{"cache/x/keep"},
			absent: []string{"cache/", "cache/x/", "cache/x/drop", "secrets/db.pass"},
		},
		{
			name:   "wildcard in a path",
			extra:  map[string]string{".dockerignore": "logs/*/*/*.log\ndeep/*/b\n"},
			want:   []string{"logs/2024/01/"},
			absent: []string{"logs/2024/01/app.log", "deep/a/b/", "deep/a/b/c/y.txt"},
		},
		{
			name:   "leading slash is anchored at the root, as in docker",
			extra:  map[string]string{".dockerignore": "/secret.env\n/tls/server.key\n"},
			want:   []string{"tls/server.crt"},
			absent: []string{"secret.env", "tls/server.key"},
		},
		{
			name:   "regexp characters are literal",
			extra:  map[string]string{".dockerignore": "key(1).pem\na+b\n"},
			want:   []string{"aab"},
			absent: []string{"key(1).pem", "a+b"},
		},
		{
			name:   "comments, blank lines, CRLF, spaces, BOM",
			extra:  map[string]string{".dockerignore": "\uFEFF.env\r\n# id_rsa\r\n\r\n  secret.env  \r\nweird name #1.txt\n./id_rsa\n"},
			absent: []string{".env", "secret.env", "weird name #1.txt", "id_rsa"},
			want:   []string{"main.go"},
		},
		{
			name:   "non-ascii names",
			extra:  map[string]string{".dockerignore": "unicodé/*.txt\n"},
			want:   []string{"unicodé/"},
			absent: []string{"unicodé/ñ.txt"},
		},
		{
			name:   "ignore everything but what is needed",
			extra:  map[string]string{".dockerignore": "*\n!main.go\n"},
			want:   []string{"Containerfile", ".dockerignore", "main.go"},
			absent: []string{"README.md", ".env", "secrets/", "tls/server.crt", "build/Containerfile"},
		},
		{
			name:   "Containerfile and ignore file are sent even when listed",
			extra:  map[string]string{".dockerignore": "Containerfile\n.dockerignore\n.env\n"},
			want:   []string{"Containerfile", ".dockerignore"},
			absent: []string{".env"},
		},
		{
			name:          "-f Containerfile in an excluded directory is still sent",
			extra:         map[string]string{".dockerignore": "build\n"},
			containerfile: "build/Containerfile",
			want:          []string{"build/Containerfile"},
			absent:        []string{"build/other.txt", "build/"},
			wantCF:        "build/Containerfile",
		},
		{
			name: "Containerfile-specific ignore file when there is no root one",
			extra: map[string]string{
				"build/Containerfile.dockerignore": "build/ignored.txt\n.env\n",
			},
			containerfile: "build/Containerfile",
			want:          []string{"build/Containerfile", "build/Containerfile.dockerignore", "build/other.txt"},
			absent:        []string{"build/ignored.txt", ".env"},
			wantCF:        "build/Containerfile",
		},
		{
			name: "Containerfile-specific dockerignore beats its containerignore",
			extra: map[string]string{
				"build/Containerfile.dockerignore":    "build/ignored.txt\n",
				"build/Containerfile.containerignore": "build/other.txt\n",
			},
			containerfile: "build/Containerfile",
			want:          []string{"build/other.txt", "build/Containerfile.containerignore"},
			absent:        []string{"build/ignored.txt"},
		},
		{
			name: "root ignore file beats a Containerfile-specific one",
			extra: map[string]string{
				".dockerignore":                    "id_rsa\n",
				"build/Containerfile.dockerignore": "build/other.txt\n",
			},
			containerfile: "build/Containerfile",
			want:          []string{"build/other.txt"},
			absent:        []string{"id_rsa"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			makeTree(t, dir, base)
			makeTree(t, dir, tc.extra)
			opts := Options{Dir: dir}
			if tc.containerfile != "" {
				opts.Containerfile = filepath.Join(dir, tc.containerfile)
			}
			for _, noSkip := range []bool{false, true} {
				h := testHooks()
				h.noSkip = noSkip
				a, err := run(t, opts, h)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range tc.want {
					if !a.has(n) {
						t.Errorf("noSkip=%v: %q missing from %q", noSkip, n, a.names)
					}
				}
				for _, n := range tc.absent {
					if a.has(n) {
						t.Errorf("noSkip=%v: %q sent, but it is ignored", noSkip, n)
					}
				}
				if tc.wantCF != "" && a.stats.ContainerfileInTar != tc.wantCF {
					t.Errorf("ContainerfileInTar = %q, want %q", a.stats.ContainerfileInTar, tc.wantCF)
				}
				if len(a.warns) != 0 {
					t.Errorf("unexpected warnings %q", a.warns)
				}
				if e := a.entries["main.go"]; a.has("main.go") && e.body != "package main" {
					t.Errorf("main.go body %q", e.body)
				}
			}
		})
	}
}

func TestBadIgnorePattern(t *testing.T) {
	for _, content := range []string{"!\n", "[\n", "foo[\n"} {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{"Containerfile": cfBody, ".dockerignore": content})
		_, err := run(t, Options{Dir: dir}, testHooks())
		if err == nil || !strings.Contains(err.Error(), "ignore pattern") {
			t.Errorf("%q: err = %v, want a bad pattern error", content, err)
		}
	}
}

func TestUnreadableIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{"Containerfile": cfBody, ".containerignore/": "", ".dockerignore": ".env\n", ".env": "x"})
	_, err := run(t, Options{Dir: dir}, testHooks())
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ".containerignore")) {
		t.Fatalf("err = %v, want an error naming .containerignore", err)
	}
}

// TestSkipMatchesFullWalk checks canSkip against podman's way, which reads
// every excluded directory, over many pattern sets.
func TestSkipMatchesFullWalk(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{
		"Containerfile":     cfBody,
		"a/b/c/d.txt":       "",
		"a/b/e.txt":         "",
		"a/bb/f.txt":        "",
		"a/x.go":            "",
		"ab/c.txt":          "",
		"node_modules/p/q/": "",
		"node_modules/p/r":  "",
		".git/objects/aa":   "",
		".git/HEAD":         "",
		"src/a/b/keep.me":   "",
		"src/a/drop.me":     "",
		"src/Dockerfile/x":  "",
		"Dockerfile/y":      "",
		"x.y/z$":            "",
		"q?/r":              "",
	})
	sets := []string{
		"a", "a\n!a/b", "a\n!a/b/c", "a\n!a/b/c/d.txt", "a\n!a/*/c", "a\n!*/b/c", "a\n!a/?b/f.txt",
		"a/b\n!a/b/c\na/b/c/d.txt", "*\n!src/a/b", "*\n!src/a/b/keep.me", "**\n!**/keep.me",
		"node_modules\n.git\n!.git/HEAD", "*/b\n!a/b/e.txt", "a*\n!ab/c.txt", "src\n!src/Dockerfile",
		"x.y\n!x.y/z$", "q?\n!q?/r", "a\n!a/[b]/e.txt", "a\n!a/b/e\\.txt", "Dockerfile\n", "*\n!Dockerfile",
		"src/*\n!src/a/*/keep.me", "a\n!a/b/c/d.txt\na/b/c",
	}
	for _, s := range sets {
		if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		var got [2][]string
		for i, noSkip := range []bool{false, true} {
			h := testHooks()
			h.noSkip = noSkip
			a, err := run(t, Options{Dir: dir}, h)
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			got[i] = a.names
		}
		if !slices.Equal(got[0], got[1]) {
			t.Errorf("patterns %q: skipping gives %q, full walk %q", s, got[0], got[1])
		}
	}
}

func TestSkipAvoidsReadingIgnoredDirectories(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{
		"Containerfile":       cfBody,
		".dockerignore":       "node_modules\n.git\n!.git/HEAD\n",
		"node_modules/a/b.js": "",
		".git/objects/aa":     "",
		".git/HEAD":           "ref",
	})
	var opened []string
	h := testHooks()
	h.open = func(name string) (*os.File, error) {
		rel, _ := filepath.Rel(dir, name)
		opened = append(opened, filepath.ToSlash(rel))
		return openNoFollow(name)
	}
	a, err := run(t, Options{Dir: dir}, h)
	if err != nil {
		t.Fatal(err)
	}
	if !a.has(".git/HEAD") || a.has(".git/objects/aa") || a.has("node_modules/a/b.js") {
		t.Errorf("archive %q", a.names)
	}
	for _, o := range opened {
		if strings.HasPrefix(o, "node_modules") || strings.HasPrefix(o, ".git/objects") {
			t.Errorf("opened %s although it is ignored", o)
		}
	}
}

func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	makeTree(t, outside, map[string]string{"secret.txt": "outside secret", "dir/f": "x"})
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{
		"Containerfile":       cfBody,
		"real/file.txt":       "real",
		"to-file":             "link:real/file.txt",
		"to-dir":              "link:real",
		"sub/up":              "link:../real/file.txt",
		"sub/self":            "link:.",
		"to-root":             "link:..",
		"dangling":            "link:nothing-here",
		"abs-inside":          "link:" + filepath.Join(dir, "real/file.txt"),
		"out-rel":             "link:../" + filepath.Base(outside) + "/secret.txt",
		"out-abs":             "link:" + filepath.Join(outside, "secret.txt"),
		"out-etc":             "link:/etc/passwd",
		"out-dir":             "link:" + filepath.Join(outside, "dir"),
		"out-dangling":        "link:../../../no/such/file",
		"chain-out":           "link:out-abs",
		"sub/deeper/escape":   "link:../../../x",
		"ignored-out":         "link:/etc/shadow",
		".dockerignore":       "ignored-out\n",
		"real/dir/inner-file": "in",
	})
	a := mustRun(t, Options{Dir: dir})
	// Sent verbatim as podman's remote client sends them, whatever they
	// point to: they resolve in the image, not here.
	sent := map[string]string{
		"to-file":           "real/file.txt",
		"to-dir":            "real",
		"sub/up":            "../real/file.txt",
		"sub/self":          ".",
		"dangling":          "nothing-here",
		"abs-inside":        filepath.Join(dir, "real/file.txt"),
		"to-root":           "..",
		"out-rel":           "../" + filepath.Base(outside) + "/secret.txt",
		"out-abs":           filepath.Join(outside, "secret.txt"),
		"out-etc":           "/etc/passwd",
		"out-dir":           filepath.Join(outside, "dir"),
		"out-dangling":      "../../../no/such/file",
		"chain-out":         "out-abs",
		"sub/deeper/escape": "../../../x",
	}
	for name, target := range sent {
		e, ok := a.entries[name]
		switch {
		case !ok:
			t.Errorf("symlink %s not sent", name)
		case e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != target || e.body != "":
			t.Errorf("%s: type %c -> %q body %q, want a symlink to %q", name, e.hdr.Typeflag, e.hdr.Linkname, e.body, target)
		}
	}
	if a.has("ignored-out") {
		t.Error("an ignored symlink was sent")
	}
	// Links are never followed: nothing from outside, nothing twice.
	for name, e := range a.entries {
		if strings.Contains(e.body, "outside secret") {
			t.Errorf("%s carries content from outside the context", name)
		}
		if strings.HasPrefix(name, "to-dir/") || strings.HasPrefix(name, "sub/self/") || strings.HasPrefix(name, "out-dir/") {
			t.Errorf("%s: a directory symlink was followed", name)
		}
	}
	if len(a.warns) != 0 {
		t.Errorf("warnings %q", a.warns)
	}
}

func TestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{"Containerfile": cfBody, ".dockerignore": "ignored.fifo\n", "ok.txt": "ok"})
	ln, err := net.Listen("unix", filepath.Join(dir, "app.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, name := range []string{"pipe.fifo", "ignored.fifo"} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	var a *archive
	go func() {
		defer close(done)
		a, err = run(t, Options{Dir: dir}, testHooks())
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the walk hangs on a FIFO")
	}
	if err != nil {
		t.Fatal(err)
	}
	if a.has("app.sock") || a.has("pipe.fifo") || a.has("ignored.fifo") || !a.has("ok.txt") {
		t.Errorf("archive %q", a.names)
	}
	want := []string{
		"not sending " + filepath.Join(dir, "app.sock") + ": a socket cannot be part of a build context (podman leaves it out too)",
		"not sending " + filepath.Join(dir, "pipe.fifo") + ": a named pipe cannot be part of a build context (podman leaves it out too)",
	}
	if !slices.Equal(a.warns, want) {
		t.Errorf("warnings %q, want %q", a.warns, want)
	}
}

// denyOpen simulates files the user cannot read: chmod 000 does not stop
// root, and the tests run as root.
func denyOpen(dir string, denied ...string) func(string) (*os.File, error) {
	return func(name string) (*os.File, error) {
		for _, d := range denied {
			if name == filepath.Join(dir, filepath.FromSlash(d)) {
				return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
			}
		}
		return openNoFollow(name)
	}
}

func TestUnreadable(t *testing.T) {
	tests := []struct {
		name     string
		ignore   string
		denied   []string
		wantErr  string // file named in the error; "" for success
		wantWarn bool
	}{
		{name: "unreadable file is an error", denied: []string{"data/blob.bin"}, wantErr: "data/blob.bin"},
		{name: "unreadable directory is an error", denied: []string{"data"}, wantErr: "data"},
		{name: "ignored unreadable file is fine", ignore: "data/blob.bin\n", denied: []string{"data/blob.bin"}},
		{name: "skipped unreadable directory is fine", ignore: "data\n", denied: []string{"data"}},
		{name: "ignored unreadable directory that must be searched warns", ignore: "data\n!**/keep\n", denied: []string{"data"}, wantWarn: true},
		{name: "unreadable file brought back by an exception is an error", ignore: "data\n!data/blob.bin\n", denied: []string{"data/blob.bin"}, wantErr: "data/blob.bin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			makeTree(t, dir, map[string]string{"Containerfile": cfBody, "data/blob.bin": "b", "zz.txt": "z", ".dockerignore": tc.ignore})
			h := testHooks()
			h.open = denyOpen(dir, tc.denied...)
			a, err := run(t, Options{Dir: dir}, h)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error; archive %q", a.names)
				}
				if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), filepath.Join(dir, tc.wantErr)+":") {
					t.Errorf("err = %v, want a permission error naming %s", err, tc.wantErr)
				}
				if strings.Count(err.Error(), filepath.Join(dir, tc.wantErr)) != 1 {
					t.Errorf("err = %v names the file more than once", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !a.has("zz.txt") || a.has("data/blob.bin") {
				t.Errorf("archive %q", a.names)
			}
			if gotWarn := len(a.warns) > 0; gotWarn != tc.wantWarn {
				t.Errorf("warnings %q, want some: %v", a.warns, tc.wantWarn)
			}
		})
	}
}

func TestContainerfileLocation(t *testing.T) {
	elsewhere := t.TempDir()
	makeTree(t, elsewhere, map[string]string{"Containerfile.prod": "FROM prod\n", "Containerfile.prod.dockerignore": "main.go\n"})
	outsideCF := filepath.Join(elsewhere, "Containerfile.prod")

	t.Run("outside the context", func(t *testing.T) {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{"main.go": "m", ".dockerignore": ".farm-*\n"})
		a := mustRun(t, Options{Dir: dir, Containerfile: outsideCF})
		cf := a.stats.ContainerfileInTar
		if cf != ".farm-Containerfile.prod" || a.entries[cf].body != "FROM prod\n" || a.entries[cf].hdr.Typeflag != tar.TypeReg {
			t.Errorf("containerfile %q: %+v", cf, a.entries[cf])
		}
		// An outside Containerfile's own ignore file is not used, as in podman.
		if !a.has("main.go") {
			t.Errorf("archive %q", a.names)
		}
		if a.stats.Files != 3 {
			t.Errorf("Files = %d, want 3", a.stats.Files)
		}
	})
	t.Run("outside, name taken", func(t *testing.T) {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{".farm-Containerfile.prod": "mine", ".farm2-Containerfile.prod/": ""})
		a := mustRun(t, Options{Dir: dir, Containerfile: outsideCF})
		if cf := a.stats.ContainerfileInTar; cf != ".farm3-Containerfile.prod" || a.entries[cf].body != "FROM prod\n" {
			t.Errorf("containerfile %q in %q", cf, a.names)
		}
		if a.entries[".farm-Containerfile.prod"].body != "mine" {
			t.Errorf("the context's own file was overwritten")
		}
	})
	t.Run("relative to the context when not found here", func(t *testing.T) {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{"ci/Containerfile.ci": "FROM ci\n"})
		a := mustRun(t, Options{Dir: dir, Containerfile: "ci/Containerfile.ci"})
		if a.stats.ContainerfileInTar != "ci/Containerfile.ci" {
			t.Errorf("ContainerfileInTar = %q", a.stats.ContainerfileInTar)
		}
	})
	t.Run("Dockerfile when there is no Containerfile", func(t *testing.T) {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{"Dockerfile": "FROM d\n"})
		if a := mustRun(t, Options{Dir: dir}); a.stats.ContainerfileInTar != "Dockerfile" {
			t.Errorf("ContainerfileInTar = %q", a.stats.ContainerfileInTar)
		}
	})
	t.Run("Containerfile preferred", func(t *testing.T) {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{"Dockerfile": "FROM d\n", "Containerfile": cfBody})
		if a := mustRun(t, Options{Dir: dir}); a.stats.ContainerfileInTar != "Containerfile" || !a.has("Dockerfile") {
			t.Errorf("ContainerfileInTar = %q in %q", a.stats.ContainerfileInTar, a.names)
		}
	})
	t.Run("none", func(t *testing.T) {
		dir := t.TempDir()
		_, err := run(t, Options{Dir: dir}, testHooks())
		if err == nil || !strings.Contains(err.Error(), "no Containerfile or Dockerfile") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing -f", func(t *testing.T) {
		dir := t.TempDir()
		_, err := run(t, Options{Dir: dir, Containerfile: filepath.Join(dir, "nope")}, testHooks())
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("symlink to a Containerfile outside", func(t *testing.T) {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{"Containerfile": "link:" + outsideCF})
		a := mustRun(t, Options{Dir: dir})
		if cf := a.stats.ContainerfileInTar; cf != ".farm-Containerfile" || a.entries[cf].body != "FROM prod\n" {
			t.Errorf("containerfile %q in %q", cf, a.names)
		}
		if e := a.entries["Containerfile"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != outsideCF || len(a.warns) != 0 {
			t.Errorf("the link was not sent as a link: %q %q", a.names, a.warns)
		}
	})
	t.Run("context given through a symlink", func(t *testing.T) {
		dir := t.TempDir()
		makeTree(t, dir, map[string]string{"real/Containerfile": cfBody, "real/f": "f", "ctx": "link:real"})
		a := mustRun(t, Options{Dir: filepath.Join(dir, "ctx"), Containerfile: filepath.Join(dir, "ctx", "Containerfile")})
		if a.stats.ContainerfileInTar != "Containerfile" || !a.has("f") {
			t.Errorf("ContainerfileInTar = %q in %q", a.stats.ContainerfileInTar, a.names)
		}
	})
	t.Run("context is not a directory", func(t *testing.T) {
		_, err := run(t, Options{Dir: outsideCF}, testHooks())
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestHeaders(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{
		"Containerfile": cfBody,
		"bin/run.sh":    "#!/bin/sh\n",
		"private":       "p",
		"a/b/c.txt":     "c",
		"first":         "same inode",
		strings.Repeat("long-directory-name/", 8) + strings.Repeat("x", 120): "long",
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(dir, "bin/run.sh"), 0o755))
	must(os.Chmod(filepath.Join(dir, "private"), 0o600))
	must(os.Chmod(filepath.Join(dir, "a"), 0o750))
	must(os.Chmod(filepath.Join(dir, "bin"), 0o755|fs.ModeSetgid|fs.ModeSticky))
	must(os.Link(filepath.Join(dir, "first"), filepath.Join(dir, "second")))
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	for _, p := range []string{"private", "a", "a/b/c.txt"} {
		must(os.Chtimes(filepath.Join(dir, p), mtime, mtime))
	}

	a := mustRun(t, Options{Dir: dir})
	modes := map[string]int64{"bin/run.sh": 0o755, "private": 0o600, "a/": 0o750, "bin/": 0o3755, "a/b/c.txt": 0o644}
	for name, mode := range modes {
		if got := a.entries[name].hdr.Mode; got != mode {
			t.Errorf("%s: mode %o, want %o", name, got, mode)
		}
	}
	for _, name := range []string{"private", "a/", "a/b/c.txt"} {
		if got := a.entries[name].hdr.ModTime; !got.Equal(mtime.Truncate(time.Second)) {
			t.Errorf("%s: mtime %v, want %v", name, got, mtime.Truncate(time.Second))
		}
	}
	if e := a.entries["second"]; e.hdr.Typeflag != tar.TypeLink || e.hdr.Linkname != "first" {
		t.Errorf("second: type %c -> %q, want a hard link to first", e.hdr.Typeflag, e.hdr.Linkname)
	}
	if e := a.entries["first"]; e.hdr.Typeflag != tar.TypeReg || e.body != "same inode" {
		t.Errorf("first: %+v", e)
	}
	long := strings.Repeat("long-directory-name/", 8) + strings.Repeat("x", 120)
	if a.entries[long].body != "long" {
		t.Errorf("long name lost: %q", a.names)
	}
	// Sorted, depth first: a directory comes right before what it holds.
	want := []string{"Containerfile", "a/", "a/b/", "a/b/c.txt", "bin/", "bin/run.sh", "first", "private", "second"}
	got := slices.DeleteFunc(slices.Clone(a.names), func(n string) bool { return strings.HasPrefix(n, "long-") })
	if !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
	if a.stats.Files != 7 {
		t.Errorf("Files = %d, want 7", a.stats.Files)
	}
}

func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"Containerfile": cfBody, ".dockerignore": "*.tmp\n"}
	for i := range 50 {
		files[fmt.Sprintf("d%d/f%d.txt", i%7, i)] = strings.Repeat(fmt.Sprintf("line %d\n", i), i*100)
	}
	makeTree(t, dir, files)
	c1, err := Build(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Reading the files changes their atimes; a file the walk skips changes.
	if err := os.WriteFile(filepath.Join(dir, "x.tmp"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2, err := Build(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Digest != c2.Digest || c1.Size() != c2.Size() {
		t.Errorf("two builds differ: %s (%d) vs %s (%d)", c1.Digest, c1.Size(), c2.Digest, c2.Size())
	}
	b1, _ := io.ReadAll(c1.NewReader())
	sum := sha256.Sum256(b1)
	if "sha256:"+hex.EncodeToString(sum[:]) != c1.Digest {
		t.Errorf("Digest %s is not the digest of the bytes", c1.Digest)
	}
	// WriteTo streams the very bytes Build keeps.
	var buf bytes.Buffer
	st, err := WriteTo(context.Background(), &buf, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), b1) || st != c1.Stats {
		t.Errorf("WriteTo differs from Build: %+v vs %+v", st, c1.Stats)
	}
	// A change that matters changes the digest.
	if err := os.WriteFile(filepath.Join(dir, "d0/f0.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	c3, err := Build(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if c3.Digest == c1.Digest {
		t.Error("a changed file left the digest unchanged")
	}
}

// TestConcurrencyDoesNotChangeBytes: the digest must not depend on the
// number of CPUs of the machine that built the context.
func TestConcurrencyDoesNotChangeBytes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"Containerfile": cfBody}
	for i := range 5 {
		files[fmt.Sprintf("f%d", i)] = strings.Repeat(fmt.Sprintf("%d compressible ", i), 100_000) + string(randomBytes(int64(i), 300_000))
	}
	makeTree(t, dir, files)
	var outs [][]byte
	for _, blocks := range []int{1, 3, 16} {
		h := testHooks()
		h.compress = func(w io.Writer) (io.WriteCloser, error) { return newPgzip(w, DefaultLevel, blocks) }
		var buf bytes.Buffer
		if _, err := writeTo(context.Background(), &buf, Options{Dir: dir}, h); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) || !bytes.Equal(outs[0], outs[2]) {
		t.Error("the compressed bytes depend on pgzip's concurrency")
	}
	var def bytes.Buffer
	if _, err := WriteTo(context.Background(), &def, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(def.Bytes(), outs[0]) {
		t.Error("WriteTo's bytes differ")
	}
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"Containerfile": cfBody}
	for i := range 20 {
		files[fmt.Sprintf("f%02d", i)] = "x"
	}
	makeTree(t, dir, files)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, Options{Dir: dir}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: err = %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var opened []string
	h := testHooks()
	h.open = func(name string) (*os.File, error) {
		opened = append(opened, filepath.Base(name))
		if filepath.Base(name) == "f05" {
			cancel()
		}
		return openNoFollow(name)
	}
	if _, err := build(ctx, Options{Dir: dir}, h); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during the walk: err = %v", err)
	}
	if slices.Contains(opened, "f06") {
		t.Errorf("the walk went on after cancellation: opened %q", opened)
	}
}

type failingWriter struct{ left int }

var errDisk = errors.New("link down")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, errDisk
	}
	f.left -= len(p)
	return len(p), nil
}

func TestWriterFails(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"Containerfile": cfBody}
	for i := range 8 {
		files[fmt.Sprintf("f%d", i)] = string(randomBytes(int64(i), 1<<20))
	}
	makeTree(t, dir, files)
	_, err := WriteTo(context.Background(), &failingWriter{left: 1000}, Options{Dir: dir})
	if !errors.Is(err, errDisk) {
		t.Errorf("err = %v, want the writer's error", err)
	}
}

func TestLevels(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{"Containerfile": cfBody, "f": strings.Repeat("compress me ", 10000)})
	for _, level := range []int{0, 1, 5, 9, -1, -2} {
		c, err := Build(context.Background(), Options{Dir: dir, Level: level})
		if err != nil {
			t.Errorf("level %d: %v", level, err)
			continue
		}
		b, _ := io.ReadAll(c.NewReader())
		if a := readArchive(t, b); a.entries["f"].body != strings.Repeat("compress me ", 10000) {
			t.Errorf("level %d: content lost", level)
		}
	}
	for _, level := range []int{10, -3, 100} {
		if _, err := Build(context.Background(), Options{Dir: dir, Level: level}); err == nil {
			t.Errorf("level %d accepted", level)
		}
	}
}

func TestSpillAndConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"Containerfile": cfBody}
	for i := range 6 {
		files[fmt.Sprintf("r%d.bin", i)] = string(randomBytes(int64(i), 700<<10))
	}
	makeTree(t, dir, files)
	mem, err := Build(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if mem.file != nil || mem.Size() < 4<<20 {
		t.Fatalf("in memory: file %v, size %d", mem.file, mem.Size())
	}
	h := testHooks()
	h.maxInMemory = 1 << 20
	spilled, err := build(context.Background(), Options{Dir: dir}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer spilled.Close()
	if spilled.file == nil {
		t.Fatal("did not spill")
	}
	if spilled.Digest != mem.Digest || spilled.Size() != mem.Size() {
		t.Fatalf("spilled %s %d, in memory %s %d", spilled.Digest, spilled.Size(), mem.Digest, mem.Size())
	}
	if _, err := os.Stat(spilled.file.Name()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("spill file %s left in the file system: %v", spilled.file.Name(), err)
	}
	for _, c := range []*Context{mem, spilled} {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				h := sha256.New()
				// Odd buffer sizes cross chunk boundaries at odd places.
				if _, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{c.NewReader()}, make([]byte, 12345)); err != nil {
					t.Error(err)
					return
				}
				if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != c.Digest {
					t.Errorf("concurrent reader got %s, want %s", got, c.Digest)
				}
			})
		}
		wg.Wait()
	}
	b, _ := io.ReadAll(spilled.NewReader())
	if a := readArchive(t, b); a.entries["r3.bin"].body != string(randomBytes(3, 700<<10)) {
		t.Error("spilled archive content differs")
	}
	if err := spilled.Close(); err != nil {
		t.Error(err)
	}
	if err := mem.Close(); err != nil {
		t.Error(err)
	}
}

func TestChunkReader(t *testing.T) {
	var s spillStore
	s.limit = 1 << 40
	data := randomBytes(9, 3*chunkSize+17)
	for p := data; len(p) > 0; {
		n := min(len(p), 300_001)
		if _, err := s.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	r := io.NewSectionReader(s.readerAt(), 0, s.size)
	for _, off := range []int64{0, chunkSize - 1, chunkSize, 3*chunkSize + 16, 3*chunkSize + 17} {
		buf := make([]byte, 100)
		n, err := r.ReadAt(buf, off)
		want := data[off:min(off+100, int64(len(data)))]
		if !bytes.Equal(buf[:n], want) || (n < 100) != (err == io.EOF) {
			t.Errorf("ReadAt(%d) = %d, %v", off, n, err)
		}
	}
}

// Each line of an ignore file becomes the pattern docker would read, in
// the form podman's matcher reads the same way.
func TestParseIgnorePatterns(t *testing.T) {
	tests := []struct{ in, want string }{
		{"foo", "foo"},
		{"  foo/  ", "foo"},
		{"/foo", "foo"},
		{"//foo/bar/", "foo/bar"},
		{"/", "/"},
		{"./foo", "foo"},
		{"!foo", "!foo"},
		{"! /foo", "!foo"},
		{"!", "!"},
		{"**/*.key", "**/*.key"},
		{"a+b", `a\+b`},
		{"key(1).pem", `key\(1\).pem`},
		{"x|y{2}", `x\|y\{2\}`},
		{"[^a]^", `[^a]\^`},
		{`already\+`, `already\+`},
		{"!c++/x", `!c\+\+/x`},
	}
	for _, tc := range tests {
		got, err := parseIgnore([]byte("\uFEFF# a comment\n" + tc.in + "\r\n\n"))
		if err != nil || len(got) != 1 || got[0] != tc.want {
			t.Errorf("parseIgnore(%q) = %q, %v; want [%q]", tc.in, got, err, tc.want)
		}
	}
}

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
	return b
}

// TestFileChangesWhileRead: as GNU tar, a file that grew is sent at its
// first size with a warning; one that shrank fails the archive.
func TestFileChangesWhileRead(t *testing.T) {
	for _, tc := range []struct {
		name, warn, err string
		change          func(path string) error
	}{
		{"grew", "file changed as we read it (grew from 4 to 8 bytes); sent its first 4 bytes", "", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteString("more")
				f.Close()
			}
			return err
		}},
		{"shrank", "", "shrank from 4 to 2 bytes while the build context was read", func(p string) error { return os.Truncate(p, 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			makeTree(t, dir, map[string]string{"Containerfile": cfBody, "data": "data"})
			h := testHooks()
			h.statted = func(abs string) {
				if filepath.Base(abs) == "data" {
					if err := tc.change(abs); err != nil {
						t.Fatal(err)
					}
				}
			}
			a, err := run(t, Options{Dir: dir}, h)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), filepath.Join(dir, "data")) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.entries["data"].body != "data" || len(a.warns) != 1 || !strings.Contains(a.warns[0], tc.warn) {
				t.Errorf("body %q, warnings %q", a.entries["data"].body, a.warns)
			}
		})
	}
}

// TestExtraAndIgnoreFile: extra files (--secret) go at the root whatever
// the ignore file says; --ignorefile replaces .containerignore.
func TestExtraAndIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, map[string]string{"Containerfile": cfBody, ".containerignore": "a.txt\n", "a.txt": "a", "b.txt": "b"})
	other := filepath.Join(t.TempDir(), "my.ignore")
	os.WriteFile(other, []byte("*\n!Containerfile\n"), 0o644)
	secret := filepath.Join(t.TempDir(), "token")
	os.WriteFile(secret, []byte("s3cr3t"), 0o600)
	a := mustRun(t, Options{Dir: dir, IgnoreFile: other, Extra: []Extra{{Name: "podman-build-secret-1", Path: secret, What: "secret id=x"}}})
	if a.has("a.txt") || a.has("b.txt") || !a.has("Containerfile") || a.entries["podman-build-secret-1"].body != "s3cr3t" {
		t.Errorf("archive %q", a.names)
	}
	_, err := run(t, Options{Dir: dir, Extra: []Extra{{Name: "x", Path: filepath.Join(dir, "nope"), What: "secret id=x"}}}, testHooks())
	if err == nil || !strings.Contains(err.Error(), "secret id=x") {
		t.Errorf("err %v", err)
	}
}
