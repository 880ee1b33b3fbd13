package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A node reaches the layer cache through a forward of its own, in the
// platform's cache repository.
func TestCacheForwardReachesTheRunRegistry(t *testing.T) {
	f := newPullFixture(t, ModeAuto, "")
	repo, fwd, err := f.puller.CacheForward(context.Background(), f.req.Session, f.req.Platform)
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	host, path, _ := strings.Cut(repo, "/")
	if want := fmt.Sprintf("127.0.0.1:%d", fwd.Port()); host != want || path != CacheRepoPrefix+"/linux-amd64" {
		t.Fatalf("cache repository %s; want %s/%s/linux-amd64", repo, want, CacheRepoPrefix)
	}
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The counts are final only once every copy has ended: a copy adds
	// what it wrote after the write, which the client may already have read.
	fwd.Close()
	if in, out := fwd.Bytes(); resp.StatusCode != http.StatusOK || in == 0 || out == 0 {
		t.Errorf("through the forward: %s, %d bytes in, %d out", resp.Status, in, out)
	}
}

// Pruning drops the layer cache's entries first pushed longer ago than the
// maximum age, and the layers only they used; newer entries and their
// layers stay, and still read back.
func TestPruneLayerCache(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	reg, err := StartRunRegistry(ctx, RunRegistryOptions{Dir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	repo := CacheRepoPrefix + "/linux-amd64"
	oldLayer := cacheEntry(t, reg.Addr(), repo, "old", "layer only the old step made")
	cacheEntry(t, reg.Addr(), repo, "new", "layer of a recent step")
	reg.Close()

	manifests := filepath.Join(dir, "docker", "registry", "v2", "repositories", repo, "_manifests")
	long := time.Now().Add(-30 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(manifests, "tags", "old"), long, long); err != nil {
		t.Fatal(err)
	}
	if err := pruneCache(ctx, dir, 7*24*time.Hour, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(manifests, "tags", "old")); !os.IsNotExist(err) {
		t.Errorf("the old entry is still there: %v", err)
	}
	hex := strings.TrimPrefix(oldLayer, "sha256:")
	if _, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex)); !os.IsNotExist(err) {
		t.Errorf("the layer only the old entry used was not collected: %v", err)
	}
	reg, err = StartRunRegistry(ctx, RunRegistryOptions{Dir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if m, err := fetchManifest(ctx, reg.http, "http://"+reg.Addr(), repo, "new"); err != nil || len(m.Layers) != 1 {
		t.Errorf("the recent entry: %+v, %v", m, err)
	}
}

// cacheEntry pushes a one-layer image as repo:tag, as buildah's --cache-to
// does, and returns its layer's digest.
func cacheEntry(t *testing.T, addr, repo, tag, layer string) string {
	t.Helper()
	base := "http://" + addr + "/v2/" + repo
	blob := func(b []byte) string {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		resp, err := http.Post(base+"/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := "http://" + addr + resp.Header.Get("Location")
		req, _ := http.NewRequest(http.MethodPut, loc+"&digest="+d, bytes.NewReader(b))
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("uploading %s: %s", d, resp.Status)
		}
		return d
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"tag":"` + tag + `"}`)
	cd, ld := blob(config), blob([]byte(layer))
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
		"layers": []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}}})
	req, _ := http.NewRequest(http.MethodPut, base+"/manifests/"+tag, bytes.NewReader(man))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("putting %s:%s: %s", repo, tag, resp.Status)
	}
	return ld
}
