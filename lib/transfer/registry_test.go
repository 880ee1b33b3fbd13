package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The run registry serves on loopback whatever the environment says (the
// docker-registry binary took REGISTRY_* as overrides), keeps what is pushed
// to it in Dir, and stops serving on Close.
func TestRunRegistryServesOnLoopbackFromDir(t *testing.T) {
	t.Setenv("REGISTRY_HTTP_ADDR", "0.0.0.0:5999")
	t.Setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", t.TempDir())
	dir := t.TempDir()
	ctx := context.Background()
	r, err := StartRunRegistry(ctx, RunRegistryOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Addr(), "127.0.0.1:") {
		t.Errorf("address %s, want 127.0.0.1:PORT", r.Addr())
	}
	base := "http://" + r.Addr()
	layer := []byte("layer bytes")
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	repo := RepoPrefix + "/linux-amd64-test"
	put := func(method, url, ctype string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := r.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, blob := range [][]byte{layer, config} {
		resp := put(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %s", resp.Status)
		}
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "/") {
			t.Fatalf("upload location %q is not relative", loc)
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		if resp := put(http.MethodPut, base+loc+sep+"digest="+digestOf(blob), "application/octet-stream", blob); resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload: %s", resp.Status)
		}
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		digestOf(config), len(config), digestOf(layer), len(layer))
	if resp := put(http.MethodPut, base+"/v2/"+repo+"/manifests/"+PushTag, "application/vnd.oci.image.manifest.v1+json", []byte(manifest)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("manifest: %s", resp.Status)
	}
	m, err := r.ManifestOf(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config != digestOf(config) || len(m.Layers) != 1 || m.Layers[0].Digest != digestOf(layer) {
		t.Errorf("manifest %+v", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2", "repositories", repo)); err != nil {
		t.Errorf("the push is not in Dir in docker-registry's layout: %v", err)
	}
	addr := r.Addr()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something still answers on %s after Close", addr)
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestFetchManifestChecksTheDigest(t *testing.T) {
	body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:c0","size":10},"layers":[{"digest":"sha256:l1","size":100},{"digest":"sha256:l2","size":23}]}`
	sum := sha256.Sum256([]byte(body))
	good := "sha256:" + hex.EncodeToString(sum[:])
	claimed := good
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "application/vnd.oci.image.manifest.v1+json") {
			t.Errorf("Accept %q", r.Header.Get("Accept"))
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", claimed)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	m, err := fetchManifest(context.Background(), srv.Client(), srv.URL, "farm/x", "t")
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest != good || m.Config != "sha256:c0" || len(m.Layers) != 2 || m.Layers[1].Size != 23 {
		t.Errorf("got %+v", m)
	}
	claimed = "sha256:0000"
	if _, err := fetchManifest(context.Background(), srv.Client(), srv.URL, "farm/x", "t"); err == nil {
		t.Error("a manifest whose bytes are not its digest must be refused")
	}
}

func TestCheckMode(t *testing.T) {
	for _, m := range []string{"auto", "archive", "registry"} {
		if err := CheckMode(m); err != nil {
			t.Error(err)
		}
	}
	if CheckMode("ssh") == nil || CheckMode("") == nil {
		t.Error("bad modes accepted")
	}
}
