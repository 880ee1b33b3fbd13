package transfer

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/farm-build/farm/lib/podman"
)

// fakePodman is a podman API on a unix socket that records the requests it
// gets and answers push and pull with canned streams.
type fakePodman struct {
	mu       sync.Mutex
	requests []*http.Request
	push     string // body of a push answer
	pull     string // body of a pull answer
}

func (f *fakePodman) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	f.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		w.Header().Set("Libpod-API-Version", "4.3.1")
		io.WriteString(w, "OK")
	case strings.HasSuffix(r.URL.Path, "/push"):
		io.WriteString(w, f.push)
	case strings.HasSuffix(r.URL.Path, "/images/pull"):
		io.WriteString(w, f.pull)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakePodman) last(t *testing.T, suffix string) *http.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if strings.HasSuffix(f.requests[i].URL.Path, suffix) {
			return f.requests[i]
		}
	}
	t.Fatalf("no request to ...%s", suffix)
	return nil
}

func startFakePodman(t *testing.T, f *fakePodman) *podman.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	api, err := podman.Connect(context.Background(), "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// credentialsEverywhere makes every place containers/image looks for
// credentials hold some, for the transfer registry's host among others.
func credentialsEverywhere(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	auth := `{"auths":{"127.0.0.1":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("farmuser:s3cret-loopback")) + `"},` +
		`"localhost:5000":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("farmuser:s3cret-5000")) + `"},` +
		`"registry.example.com":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("farmuser:s3cret-real")) + `"}}}`
	file := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(file, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REGISTRY_AUTH_FILE", file)
	os.MkdirAll(filepath.Join(dir, "docker"), 0o700)
	os.WriteFile(filepath.Join(dir, "docker", "config.json"), []byte(auth), 0o600)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))
}

func checkNoCredentials(t *testing.T, r *http.Request) {
	t.Helper()
	if v := r.Header.Values("X-Registry-Config"); len(v) != 0 {
		t.Errorf("%s sent X-Registry-Config %v", r.URL.Path, v)
	}
	if v := r.Header.Get("Authorization"); v != "" {
		t.Errorf("%s sent Authorization %q", r.URL.Path, v)
	}
	vals := r.Header.Values("X-Registry-Auth")
	if len(vals) != 1 {
		t.Fatalf("%s: want exactly one X-Registry-Auth header (an empty set, so the service uses no auth file of its own), got %v", r.URL.Path, vals)
	}
	raw, err := base64.URLEncoding.DecodeString(vals[0])
	if err != nil || string(raw) != "{}" {
		t.Errorf("%s: X-Registry-Auth carries %q (%v), want {}", r.URL.Path, raw, err)
	}
}

// Credentials of real registries never travel with a transfer: not to the
// node's push, not to the local pull, whatever the user's auth files hold.
func TestPushAndPullSendNoCredentials(t *testing.T) {
	credentialsEverywhere(t)
	f := &fakePodman{
		push: `{"stream":"Copying blob sha256:aa\n"}` + "\n" + `{"manifestdigest":"sha256:bb"}` + "\n",
		pull: `{"stream":"Copying blob\n"}` + "\n" + `{"images":["cc"]}` + "\n" + `{"id":"cc"}` + "\n",
	}
	api := startFakePodman(t, f)

	d, err := push(context.Background(), api, "cc", "127.0.0.1:23001/farm/transfer:x", CompressionZstd)
	if err != nil || d != "sha256:bb" {
		t.Fatalf("push: %q, %v", d, err)
	}
	r := f.last(t, "/push")
	checkNoCredentials(t, r)
	if q := r.URL.Query(); q.Get("destination") != "127.0.0.1:23001/farm/transfer:x" || q.Get("tlsVerify") != "false" ||
		q.Get("compressionFormat") != "zstd" || q.Get("forceCompressionFormat") != "false" {
		t.Errorf("push query %v", q)
	}
	ids, err := pull(context.Background(), api, "127.0.0.1:4000/farm/transfer@sha256:bb", "linux", "arm64", "")
	if err != nil || len(ids) != 1 || ids[0] != "cc" {
		t.Fatalf("pull: %v, %v", ids, err)
	}
	r = f.last(t, "/images/pull")
	checkNoCredentials(t, r)
	if q := r.URL.Query(); q.Get("reference") != "127.0.0.1:4000/farm/transfer@sha256:bb" || q.Get("policy") != "always" || q.Get("arch") != "arm64" {
		t.Errorf("pull query %v", q)
	}

	// The same environment makes pkg/bindings' own Push send every
	// credential: the environment above is one that would leak.
	if err := images.Push(api.Bind(context.Background()), "cc", "127.0.0.1:23001/farm/transfer:x", &images.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.URLEncoding.DecodeString(f.last(t, "/push").Header.Get("X-Registry-Auth"))
	if !strings.Contains(string(raw), "registry.example.com") {
		t.Fatalf("the test's credentials are not found by containers/image, so it proves nothing: bindings sent %q", raw)
	}
}

func TestPushStreamErrorIsTheError(t *testing.T) {
	d, err := decodePushStream(strings.NewReader(`{"stream":"Copying blob sha256:aa\n"}
{"error":"writing blob: initiating layer upload to /v2/farm/transfer/blobs/uploads/ in 127.0.0.1:23001: EOF\n"}
`))
	if err == nil || d != "" || !strings.Contains(err.Error(), "initiating layer upload") || strings.HasSuffix(err.Error(), "\n") {
		t.Fatalf("got %q, %v", d, err)
	}
	if _, err := decodePushStream(strings.NewReader(`{"stream":"x"`)); err == nil {
		t.Error("a cut stream must be an error")
	}
	d, err = decodePushStream(strings.NewReader(`{"stream":"Writing manifest\n"}`))
	if err != nil || d != "" {
		t.Errorf("podman 4.3 reports no digest: got %q, %v", d, err)
	}
}

func TestPullStreamErrors(t *testing.T) {
	if _, err := decodePullStream(strings.NewReader(`{"error":"reading manifest: manifest unknown"}`)); err == nil || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("got %v", err)
	}
	if _, err := decodePullStream(strings.NewReader(`{"stream":"Trying to pull\n"}`)); err == nil {
		t.Error("a pull that names no image must be an error")
	}
}
