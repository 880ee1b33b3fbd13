package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/podmantest"
)

// pullFixture is a node and the local service, both fake podman services,
// and a Puller between them.
type pullFixture struct {
	node, local *podmantest.Server
	req         Request
	puller      *Puller
	notes       *notes
	img         testImage

	mu     sync.Mutex
	pulled []string // references the local service was asked to pull
}

type notes struct {
	mu    sync.Mutex
	lines []string
}

func (n *notes) add(s string) { n.mu.Lock(); n.lines = append(n.lines, s); n.mu.Unlock() }
func (n *notes) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.lines, "\n")
}

// testImage is a real single-layer image: its config's digest is its ID.
type testImage struct {
	id            string
	config, layer []byte
}

func newTestImage(nonce string) testImage {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"nonce":"` + nonce + `"}`)
	return testImage{id: fmt.Sprintf("%x", sha256.Sum256(config)), config: config, layer: []byte("layer " + nonce)}
}

func newPullFixture(t *testing.T, mode string, nodeURI string) *pullFixture {
	t.Helper()
	return newPullFixtureWith(t, Options{Mode: mode}, nodeURI)
}

func newPullFixtureWith(t *testing.T, opts Options, nodeURI string) *pullFixture {
	t.Helper()
	f := &pullFixture{node: podmantest.New(t), local: podmantest.New(t), notes: &notes{}}
	localClient := connect(t, f.local.URI)
	opts.CacheDir, opts.LockDir, opts.Log = t.TempDir(), t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil))
	f.puller = NewPuller(localClient, opts)
	t.Cleanup(func() { f.puller.Close() })
	if nodeURI == "" {
		nodeURI = f.node.URI
	}
	s, err := conn.Open(context.Background(), conn.Target{Name: "n1", URI: nodeURI}, conn.SSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	img := newTestImage(t.Name())
	f.node.AddImage(podmantest.Image{ID: img.id, Names: []string{"localhost/app:1-linux-amd64"}, Size: 42})
	f.req = Request{Session: s, Node: connect(t, f.node.URI), ID: img.id, Ref: "localhost/app:1-linux-amd64",
		Platform: platform.MustParse("linux/amd64"), Note: f.notes.add}
	f.node.Handle(http.MethodPost, "/images/[^/]+/push", pushTo(t, img))
	f.img = img
	f.local.Handle(http.MethodPost, "/images/pull", localPull(f, img, true))
	return f
}

// localPull plays the local podman service's pull: it reads the manifest
// from the registry the reference names (when reach says it can get
// there), as podman would, and adds img to local storage.
func localPull(f *pullFixture, img testImage, reach bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref := r.URL.Query().Get("reference")
		f.mu.Lock()
		f.pulled = append(f.pulled, ref)
		f.mu.Unlock()
		host, path, _ := strings.Cut(ref, "/")
		if !reach {
			podmantest.Stream(map[string]string{"error": "pinging container registry " + host + ": dial tcp " + host + ": connect: connection refused"})(w, r)
			return
		}
		repo, tag, ok := strings.Cut(path, "@")
		if !ok {
			repo, tag, _ = strings.Cut(path, ":")
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			podmantest.Stream(map[string]string{"error": err.Error()})(w, r)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			podmantest.Stream(map[string]string{"error": "reading manifest " + tag + " in " + host + "/" + repo + ": manifest unknown"})(w, r)
			return
		}
		f.local.AddImage(podmantest.Image{ID: img.id, Names: []string{ref}, Size: 42})
		podmantest.Stream(map[string]any{"images": []string{img.id}})(w, r)
	}
}

func connect(t *testing.T, uri string) *podman.Client {
	t.Helper()
	c, err := podman.Connect(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pushTo plays a node's podman pushing img to the destination it is given:
// the registry API calls a push makes (blobs, then the manifest).
func pushTo(t *testing.T, img testImage) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dest := r.URL.Query().Get("destination")
		hostRepo, _, _ := strings.Cut(dest, ":"+PushTag)
		host, repo, _ := strings.Cut(hostRepo, "/")
		base := "http://" + host + "/v2/" + repo
		upload := func(b []byte) (string, error) {
			d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
			resp, err := http.Post(base+"/blobs/uploads/", "", nil)
			if err != nil {
				return "", err
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if strings.HasPrefix(loc, "/") {
				loc = "http://" + host + loc
			}
			sep := "?"
			if strings.Contains(loc, "?") {
				sep = "&"
			}
			req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+d, bytes.NewReader(b))
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				return "", err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return "", fmt.Errorf("blob upload: %s", resp.Status)
			}
			return d, nil
		}
		cd, err := upload(img.config)
		ld, err2 := upload(img.layer)
		if err = errors.Join(err, err2); err != nil {
			podmantest.Stream(map[string]string{"error": err.Error()})(w, r)
			return
		}
		man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(img.config)},
			"layers": []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(img.layer)}}})
		req, _ := http.NewRequest(http.MethodPut, base+"/manifests/"+PushTag, bytes.NewReader(man))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			podmantest.Stream(map[string]string{"error": fmt.Sprintf("manifest upload: %v %v", err, resp)})(w, r)
			return
		}
		resp.Body.Close()
		podmantest.Stream(map[string]string{"stream": "Writing manifest\n"})(w, r)
	}
}

func TestPullThroughTheRunRegistry(t *testing.T) {
	for _, mode := range []string{ModeRegistry, ModeAuto} {
		t.Run(mode, func(t *testing.T) {
			f := newPullFixture(t, mode, "")
			res, err := f.puller.Pull(context.Background(), f.req)
			if err != nil {
				t.Fatalf("%v\n%s", err, f.notes)
			}
			if res.Method != "registry" || res.Layers != 1 || res.LayerBytes == 0 || res.In == 0 || res.Out == 0 || res.Size != 42 {
				t.Errorf("result %+v", res)
			}
			img, ok := f.local.Image(f.req.ID)
			if !ok || !containsName(img.Names, f.req.Ref) {
				t.Fatalf("local storage: %+v", img)
			}
			for _, n := range img.Names {
				if strings.Contains(n, "@sha256:") {
					t.Errorf("the transfer registry's name stayed: %v", img.Names)
				}
			}
			if f.node.Count("GET /images/export") != 0 {
				t.Error("an archive was made too")
			}
		})
	}
}

func containsName(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

func TestPullFallsBackToAnArchive(t *testing.T) {
	for _, tc := range []struct {
		name, mode, uri string
		script          func(f *pullFixture)
		note            string
		wantErr         string
		local           bool
	}{
		{name: "archive mode", mode: ModeArchive, script: func(*pullFixture) {}, note: "pulling back"},
		{name: "auto: a tcp:// node", mode: ModeAuto, uri: "tcp://127.0.0.1:1", script: func(*pullFixture) {},
			note: "transfer: archive, not registry: n1 is a tcp:// node"},
		{name: "registry: a tcp:// node", mode: ModeRegistry, uri: "tcp://127.0.0.1:1", script: func(*pullFixture) {},
			wantErr: "registry transfer unavailable: n1 is a tcp:// node"},
		{name: "auto: the push fails", mode: ModeAuto, script: func(f *pullFixture) {
			f.node.Handle(http.MethodPost, "/images/[^/]+/push", podmantest.Stream(map[string]string{"error": "writing blob: EOF"}))
		}, note: "registry transfer failed, falling back to an archive: pushing linux/amd64 from n1 to the transfer registry: writing blob: EOF"},
		{name: "registry: the push fails", mode: ModeRegistry, script: func(f *pullFixture) {
			f.node.Handle(http.MethodPost, "/images/[^/]+/push", podmantest.Fail(500, "push exploded"))
		}, wantErr: "push exploded"},
		{name: "registry: the local pull fails", mode: ModeRegistry, script: func(f *pullFixture) {
			f.local.Handle(http.MethodPost, "/images/pull", podmantest.Stream(map[string]string{"error": "no space left"}))
		}, wantErr: "local podman service unix://", local: true},
		{name: "archive: the load fails", mode: ModeArchive, script: func(f *pullFixture) {
			f.local.Handle(http.MethodPost, "/images/load", podmantest.Fail(500, "no space left on device"))
		}, wantErr: "loading", local: true},
		{name: "archive: the export dies", mode: ModeArchive, script: func(f *pullFixture) {
			f.node.Handle(http.MethodGet, "/images/export", podmantest.DieMidStream())
		}, wantErr: "exporting"},
		{name: "the local service is down", mode: ModeArchive, script: func(f *pullFixture) { f.local.Close() },
			wantErr: "local podman service", local: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPullFixture(t, tc.mode, tc.uri)
			tc.script(f)
			res, err := f.puller.Pull(context.Background(), f.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if fault.Is(err, fault.Local) != tc.local {
					t.Errorf("local: %v, want %v (%v)", !tc.local, tc.local, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, f.notes)
			}
			if res.Method != "archive" || res.In == 0 || !strings.Contains(f.notes.String(), tc.note) {
				t.Errorf("result %+v, notes:\n%s", res, f.notes)
			}
			if img, ok := f.local.Image(f.req.ID); !ok || !containsName(img.Names, f.req.Ref) {
				t.Errorf("local storage: %+v", img)
			}
		})
	}
}

func TestPullNothingWhenLocalHasItAndUndo(t *testing.T) {
	f := newPullFixture(t, ModeArchive, "")
	f.local.AddImage(podmantest.Image{ID: f.req.ID})
	res, err := f.puller.Pull(context.Background(), f.req)
	if err != nil || res.Method != "none" || res.In != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	f.puller.Undo()
	if _, ok := f.local.Image(f.req.ID); !ok {
		t.Error("Undo removed an image the run did not bring")
	}

	g := newPullFixture(t, ModeArchive, "")
	if _, err := g.puller.Pull(context.Background(), g.req); err != nil {
		t.Fatal(err)
	}
	g.puller.Undo()
	if _, ok := g.local.Image(g.req.ID); ok {
		t.Error("Undo left the image it brought")
	}
}

// A run of the same tag before this one left the per-platform name on its
// image, which its list may hold. An interrupted run gives the name back to
// that image, whichever way its own came; unless another run has moved the
// name on meanwhile: then it stays there.
func TestUndoGivesTheNameBack(t *testing.T) {
	const earlier, later = "e0e0e0e0e0e0e0e0", "f0f0f0f0f0f0f0f0"
	for _, mode := range []string{ModeArchive, ModeRegistry} {
		for _, movedOn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/moved on %v", mode, movedOn), func(t *testing.T) {
				f := newPullFixture(t, mode, "")
				f.local.AddImage(podmantest.Image{ID: earlier, Names: []string{f.req.Ref}})
				f.local.AddImage(podmantest.Image{ID: later})
				if _, err := f.puller.Pull(context.Background(), f.req); err != nil {
					t.Fatalf("%v\n%s", err, f.notes)
				}
				if img, _ := f.local.Image(f.req.ID); !slices.Equal(img.Names, []string{f.req.Ref}) {
					t.Fatalf("the pulled image is named %q, want only %s", img.Names, f.req.Ref)
				}
				want := earlier
				if movedOn {
					want = later
					tagged, _ := nameTag(f.req.Ref)
					if err := images.Tag(connect(t, f.local.URI).Bind(context.Background()), later, tagged.Tag(), tagged.Name(), nil); err != nil {
						t.Fatal(err)
					}
				}
				f.puller.Undo()
				if img, ok := f.local.Image(f.req.Ref); !ok || img.ID != want {
					t.Errorf("after undo %s is on %+v, want %s", f.req.Ref, img, want)
				}
				if _, ok := f.local.Image(f.req.ID); ok {
					t.Error("undo left the image the run brought")
				}
			})
		}
	}
}

func TestPullerAfterClose(t *testing.T) {
	f := newPullFixture(t, ModeRegistry, "")
	f.puller.Close()
	if _, err := f.puller.Pull(context.Background(), f.req); err == nil || !strings.Contains(err.Error(), "the transfer registry is stopped") {
		t.Errorf("a pull after Close: %v", err)
	}
}

func TestCancelledPull(t *testing.T) {
	f := newPullFixture(t, ModeArchive, "")
	started := make(chan struct{}, 1)
	f.node.Handle(http.MethodGet, "/images/export", podmantest.Stall(started))
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { <-started; cancel(errors.New("interrupted")) }()
	_, err := f.puller.Pull(ctx, f.req)
	if err == nil {
		t.Fatal("a cancelled pull succeeded")
	}
	if fault.KindOf(ctx, err) != fault.Cancelled {
		t.Errorf("kind %v", fault.KindOf(ctx, err))
	}
}
