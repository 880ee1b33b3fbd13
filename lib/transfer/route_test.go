package transfer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/podmantest"
)

// pullRefs lists the references the local service was asked to pull.
func pullRefs(f *pullFixture) (probes, images []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ref := range f.pulled {
		if strings.Contains(ref, "/"+ProbeRepo+"/") {
			probes = append(probes, ref)
		} else {
			images = append(images, ref)
		}
	}
	return probes, images
}

// A local service that cannot reach the registry (a VM behind a unix
// socket, as on macOS) is found out by the probe before any node pushes:
// auto falls back to an archive saying why, registry fails the job as a
// local fault (no fail-over).
func TestLocalServiceThatCannotReachTheRegistry(t *testing.T) {
	for _, mode := range []string{ModeAuto, ModeRegistry} {
		t.Run(mode, func(t *testing.T) {
			f := newPullFixture(t, mode, "")
			f.local.Handle(http.MethodPost, "/images/pull", localPull(f, f.img, false))
			res, err := f.puller.Pull(context.Background(), f.req)
			if mode == ModeRegistry {
				if err == nil || !fault.Is(err, fault.Local) || !strings.Contains(err.Error(), "cannot reach the transfer registry") || !strings.Contains(err.Error(), "connection refused") {
					t.Fatalf("error %v", err)
				}
			} else if err != nil || res.Method != "archive" || !strings.Contains(f.notes.String(), "transfer: archive, not registry: the local podman service") {
				t.Fatalf("%+v %v\n%s", res, err, f.notes)
			}
			if n := f.node.Count("POST /images/" + f.req.ID + "/push"); n != 0 {
				t.Errorf("the node pushed %d times for a local service that cannot pull", n)
			}
			// Once per run: the next job does not probe again.
			f.puller.Pull(context.Background(), f.req)
			if probes, _ := pullRefs(f); len(probes) != 1 {
				t.Errorf("probes: %v", probes)
			}
		})
	}
}

// A local service reached over SSH pulls through a forward on its own
// connection (LocalListen), probed once for the run; one that refuses
// forwarding is tried at the registry's own address.
func TestLocalServiceThroughItsForward(t *testing.T) {
	var mu sync.Mutex
	var ports []string
	forward := func(network, addr string) (net.Listener, error) {
		l, err := net.Listen(network, addr)
		if err == nil {
			mu.Lock()
			_, p, _ := net.SplitHostPort(l.Addr().String())
			ports = append(ports, p)
			mu.Unlock()
		}
		return l, err
	}
	f := newPullFixtureWith(t, Options{Mode: ModeRegistry, LocalListen: forward, LocalName: "ssh://core@vm/run/podman.sock"}, "")
	if res, err := f.puller.Pull(context.Background(), f.req); err != nil || res.Method != "registry" {
		t.Fatalf("%+v %v\n%s", res, err, f.notes)
	}
	// A second image of the run: no second probe, no second forward.
	img2 := newTestImage(t.Name() + "-2")
	f.node.AddImage(podmantest.Image{ID: img2.id, Size: 42})
	f.node.Handle(http.MethodPost, "/images/[^/]+/push", pushTo(t, img2))
	f.local.Handle(http.MethodPost, "/images/pull", localPull(f, img2, true))
	req2 := f.req
	req2.ID, req2.Ref = img2.id, "localhost/app:2-linux-amd64"
	if res, err := f.puller.Pull(context.Background(), req2); err != nil || res.Method != "registry" {
		t.Fatalf("second image: %+v %v\n%s", res, err, f.notes)
	}
	probes, imgs := pullRefs(f)
	if len(probes) != 1 || len(ports) != 1 {
		t.Fatalf("probes %v, forwards on %v: want one of each for the run", probes, ports)
	}
	for _, ref := range append(probes, imgs...) {
		if !strings.HasPrefix(ref, "127.0.0.1:"+ports[0]+"/") {
			t.Errorf("the local service pulled %s, not through its forward on port %s", ref, ports[0])
		}
	}

	refused := func(string, string) (net.Listener, error) {
		return nil, errors.New("tcpip-forward request denied by peer")
	}
	g := newPullFixtureWith(t, Options{Mode: ModeRegistry, LocalListen: refused}, "")
	if res, err := g.puller.Pull(context.Background(), g.req); err != nil || res.Method != "registry" {
		t.Fatalf("no forward, the registry's own address reachable: %+v %v", res, err)
	}
}
