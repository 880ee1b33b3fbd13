package dispatch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/buildctx"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
)

// tarBall is a build context as farm-build sends it, marked with comment
// (none: as podman-remote or a user sends one), or a gzip stream with any
// other comment (a look-alike).
func tarBall(t *testing.T, comment string) []byte {
	t.Helper()
	if run, ok := strings.CutPrefix(comment, "farm-run "); ok && len(run) == 12 {
		m, _ := markContext(bytes.NewReader(tarBall(t, "")), run)
		b, _ := io.ReadAll(m)
		return b
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Comment = comment
	zw.Write([]byte("not a tar"))
	zw.Close()
	if comment != "" {
		return b.Bytes()
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM scratch\n"), 0o644)
	bc, err := buildctx.Build(context.Background(), buildctx.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	data, _ := io.ReadAll(bc.NewReader())
	return data
}

// The marks go in a gzip member before the context: its header's comment,
// at a fixed place (byte 10 on: only FCOMMENT is set), where a later run
// reads it from the first bytes of a dead upload (podman 4 keeps the body
// verbatim); and the archive's first file, farm-run-RUN, which podman 5
// unpacks first (the request sends it as a secret). The context's own
// archive follows unchanged. A stream that is not gzip passes as is.
func TestMarkContext(t *testing.T) {
	plain := tarBall(t, "")
	m, name := markContext(bytes.NewReader(plain), "0123456789ab")
	b, _ := io.ReadAll(m)
	if b[3] != 0x10 || string(b[10:32]) != "farm-run 0123456789ab\x00" || name != "farm-run-0123456789ab" {
		t.Errorf("header % x, mark file %q: want FLG 0x10, the mark at byte 10, farm-run-0123456789ab", b[:32], name)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	marked, _ := io.ReadAll(zr)
	tr := tar.NewReader(bytes.NewReader(marked))
	h, err := tr.Next()
	body, _ := io.ReadAll(tr)
	if err != nil || h.Name != name || string(body) != "farm-run 0123456789ab\n" {
		t.Errorf("first entry %+v (%v) %q: want the mark file", h, err, body)
	}
	zr, _ = gzip.NewReader(bytes.NewReader(plain))
	unmarked, _ := io.ReadAll(zr)
	if zr.Comment != "" || len(unmarked) == 0 || len(marked) != 1024+len(unmarked) || !bytes.Equal(marked[1024:], unmarked) {
		t.Errorf("the mark changed the context's archive, or the plain context has a comment (%q)", zr.Comment)
	}
	for _, other := range [][]byte{[]byte("short"), nil, []byte("plain tar, not gzip")} {
		m, name := markContext(bytes.NewReader(other), "0123456789ab")
		if got, _ := io.ReadAll(m); !bytes.Equal(got, other) || name != "" {
			t.Errorf("markContext changed %q to %q (mark file %q)", other, got, name)
		}
	}
}

// The mark file goes with the request as a secret, after the user's.
func TestRunMarkIsSentAsASecret(t *testing.T) {
	req := request{spec: &Spec{Secrets: []string{"id=x,src=podman-build-secret-1"}}, runMark: "farm-run-0123456789ab"}
	p, err := req.params()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Get("secrets"), `["id=x,src=podman-build-secret-1","id=farm-run-0123456789ab,src=farm-run-0123456789ab"]`; got != want {
		t.Errorf("secrets %s, want %s", got, want)
	}
	if len(req.spec.Secrets) != 1 {
		t.Errorf("the spec's secrets changed: %v", req.spec.Secrets)
	}
}

// tmpTree makes a node's temporary directory holding two dead runs'
// directories (an upload, a RUN step's bundle), a live run's, a user's
// build, look-alike marks and a bundle of a run of an older farm (no run
// id), and returns it and the dead run's directories.
func tmpTree(t *testing.T, dead, live string) (string, []string) {
	t.Helper()
	tmp := t.TempDir()
	files := map[string][]byte{
		"libpod_builder1/tarBall": tarBall(t, contextMark(dead)),
		"libpod_builder1/build/f": []byte("x"),
		"libpod_builder2/tarBall": tarBall(t, contextMark(live)),
		"libpod_builder3/tarBall": tarBall(t, ""),
		"libpod_builder4/tarBall": tarBall(t, contextMark(dead)+"0"),
		"libpod_builder5/tarBall": tarBall(t, "farm-run"),
		"buildah1/hosts":          []byte("127.0.0.1\tfarm-" + dead + "00000001.invalid\n127.0.0.1\tlocalhost\n"),
		"buildah2/hosts":          []byte("127.0.0.1\tfarm-23b78b313227837a.invalid\n"),
		"buildah3/hosts":          []byte("127.0.0.1\tlocalhost\n"),
		"other/tarBall":           tarBall(t, contextMark(dead)),
		// podman 4, unpacked: the mark file moved out of build/ too
		"libpod_builder1/" + runMarkFile(dead): nil,
		// podman 5: mid-upload, unpacked (the mark moved), a live run's,
		// look-alikes
		"libpod_builder6/build/" + runMarkFile(dead): nil,
		"libpod_builder7/" + runMarkFile(dead):       nil,
		"libpod_builder7/build/Containerfile":        []byte("FROM scratch\n"),
		"libpod_builder8/" + runMarkFile(live):       nil,
		"libpod_builder9/build/farm-run-xyz":         nil,
		"libpod_builder9/" + runMarkFile(dead) + "0": nil,
		"libpod_builder9/farm-run-0123456789AB":      nil,
		"other/" + runMarkFile(dead):                 nil,
	}
	for name, data := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(tmp, name)), 0o755)
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tmp, []string{filepath.Join(tmp, "buildah1"), filepath.Join(tmp, "libpod_builder1"),
		filepath.Join(tmp, "libpod_builder6"), filepath.Join(tmp, "libpod_builder7")}
}

// Marked temporary directories are listed under their run (never the
// run's own), and removing a dead run's takes exactly those.
func TestTmpLeftovers(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dead, live := "0123456789ab", "ba9876543210"
	tmp, deads := tmpTree(t, dead, live)
	s := localShell(t)
	out, err := s.Run(context.Background(), leftoversScript(t.TempDir(), []string{tmp}, "/nonexistent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	got := parseLeftovers(string(out), live)
	slices.Sort(got[dead].tmp)
	want := map[string]*leftovers{dead: {tmp: deads}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leftovers %v, want %v (script said %q)", got, want, out)
	}
	all, _ := filepath.Glob(filepath.Join(tmp, "*"))
	n, err := removeTmp(context.Background(), s, dead, all)
	if err != nil || n != "4" {
		t.Errorf("removed %s (%v), want 4", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "*"))
	if want := slices.DeleteFunc(all, func(d string) bool { return slices.Contains(deads, d) }); !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// The service's own TMPDIR is found from its process, by its socket, or
// as a socket-activated service (LISTEN_FDS, no socket on its command
// line); another podman process's is not.
func TestTmpDirsOfTheService(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "podman.sock")
	podman := filepath.Join(t.TempDir(), "podman")
	os.Symlink("/bin/sh", podman)
	var want []string
	for _, p := range []struct {
		arg, env string
		found    bool
	}{{"unix://" + sock, "", true}, {"system", "LISTEN_FDS=1", true}, {"unix:///elsewhere.sock", "", false}} {
		tmp := t.TempDir()
		cmd := exec.Command(podman, "-c", "sleep 30; :", "sh", p.arg)
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, p.env)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		if p.found {
			want = append(want, tmp)
		}
	}
	out, err := localShell(t).Run(context.Background(), tmpDirsScript([]string{"/var/tmp"}, sock)+"tmpdirs\n")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	got = slices.Compact(got) // the callers sort -u
	want = append(want, "/var/tmp")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("temporary directories %q, want /var/tmp and the services' TMPDIR %q", got, want)
	}
}

// A dead run's reaping removes its marked temporary directories.
func TestReapRemovesTmp(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dead := "0123456789ab"
	tmp, deads := tmpTree(t, dead, "ba9876543210")
	r := NewRunner(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.stop = func(context.Context, *conn.Session, string, node.Kind, bool) (string, error) { return "", nil }
	r.reapRun(localShell(t), nil, node.Kind{}, dead, &leftovers{tmp: deads})
	for _, d := range deads {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s is left", d)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "libpod_builder3", "tarBall")); err != nil {
		t.Errorf("the user's upload went: %v", err)
	}
}
