package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRegistryConfigIsLoopbackOnly(t *testing.T) {
	conf := registryConfig("/home/u/.cache/farm/registry", "127.0.0.1:41234", "n0nce", "s3cret")
	for _, want := range []string{`addr: "127.0.0.1:41234"`, `rootdirectory: "/home/u/.cache/farm/registry"`, `X-Farm-Transfer: ["n0nce"]`, "relativeurls: true"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %s:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "auth:") {
		t.Errorf("the transfer registry asks no credentials, so a client never offers any:\n%s", conf)
	}
}

func TestRegistryEnvDropsOverrides(t *testing.T) {
	env := registryEnv([]string{"PATH=/usr/bin", "REGISTRY_HTTP_ADDR=0.0.0.0:5000", "REGISTRY_AUTH_FILE=/x/auth.json", "HTTP_PROXY=http://proxy:3128", "HOME=/root"})
	if strings.Join(env, " ") != "PATH=/usr/bin HOME=/root" {
		t.Errorf("env %v", env)
	}
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
