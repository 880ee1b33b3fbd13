package manifest

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/record"
)

func localFixture(t *testing.T) (*podmantest.Server, *podman.Client, []*record.Image) {
	t.Helper()
	fake := podmantest.New(t)
	c, err := podman.Connect(context.Background(), fake.URI)
	if err != nil {
		t.Fatal(err)
	}
	amd, arm := podmantest.BuildID("amd"), podmantest.BuildID("arm")
	fake.AddImage(podmantest.Image{ID: amd, Arch: "amd64", Digest: "sha256:" + strings.Repeat("a", 64)})
	fake.AddImage(podmantest.Image{ID: arm, Arch: "arm64", Digest: "sha256:" + strings.Repeat("b", 64)})
	return fake, c, []*record.Image{{Platform: "linux/arm64", ID: arm}, {Platform: "linux/amd64", ID: amd}}
}

func TestCreateReplacesTheListWhole(t *testing.T) {
	fake, c, imgs := localFixture(t)
	opts := Options{LockDir: t.TempDir()}
	for run := 1; run <= 2; run++ {
		rec, err := Create(context.Background(), c, "localhost/app:1", imgs, opts)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if len(rec.Instances) != 2 || rec.Instances[0].Platform != "linux/amd64" || !strings.HasPrefix(rec.Digest, "sha256:") || rec.ID == "" {
			t.Errorf("run %d: %+v", run, rec)
		}
		if ids, _ := fake.List("localhost/app:1"); len(ids) != 2 {
			t.Errorf("run %d: the list holds %v", run, ids)
		}
	}
	if fake.Count("DELETE /manifests/localhost%2Fapp:1") != 1 {
		t.Errorf("the second run did not replace the first list: %v", fake.Requests())
	}
	digest, err := Push(context.Background(), c, "localhost/app:1", PushOptions{Destination: "docker://127.0.0.1:5000/app:1", Format: "oci"})
	if err != nil || digest != "sha256:"+strings.Repeat("e", 64) {
		t.Errorf("push: %q %v", digest, err)
	}
}

func TestCreateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  func(*podmantest.Server, []*record.Image)
		wantErr string
	}{
		{"an image is gone", func(f *podmantest.Server, imgs []*record.Image) { imgs[0].ID = podmantest.BuildID("gone") }, "is not in local storage"},
		{"a record lies about the platform", func(f *podmantest.Server, imgs []*record.Image) { imgs[0].Platform = "linux/s390x" }, "by its config"},
		{"the name is an image", func(f *podmantest.Server, _ []*record.Image) {
			f.AddImage(podmantest.Image{ID: podmantest.BuildID("x"), Names: []string{"localhost/app:1"}})
		}, "names an image, not a manifest list"},
		{"an add fails: no half-made list", func(f *podmantest.Server, _ []*record.Image) {
			f.Handle(http.MethodPut, "/manifests/.*", podmantest.Fail(500, "storage is locked"))
		}, "storage is locked"},
		{"no images", func(f *podmantest.Server, imgs []*record.Image) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, c, imgs := localFixture(t)
			tc.script(fake, imgs)
			if tc.wantErr == "" {
				imgs = nil
				tc.wantErr = "no image records"
			}
			_, err := Create(context.Background(), c, "localhost/app:1", imgs, Options{LockDir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if _, ok := fake.List("localhost/app:1"); ok {
				t.Error("a list was left behind")
			}
		})
	}
}

func TestPushFails(t *testing.T) {
	fake, c, imgs := localFixture(t)
	if _, err := Create(context.Background(), c, "localhost/app:1", imgs, Options{LockDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	fake.Handle(http.MethodPost, "/manifests/.*/registry/.*", podmantest.Stream(map[string]string{"error": "unauthorized"}))
	_, err := Push(context.Background(), c, "localhost/app:1", PushOptions{Destination: "docker://127.0.0.1:5000/app:1", TLSVerify: true, Authfile: t.TempDir() + "/auth.json", Format: "v2s2"})
	if err == nil || !strings.Contains(err.Error(), "unauthorized") || !strings.Contains(err.Error(), "--tls-verify=false") {
		t.Errorf("error %v", err)
	}
}
