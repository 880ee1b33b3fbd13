package node

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/podmantest"
)

func TestProbe(t *testing.T) {
	arm := podmantest.New(t)
	arm.Info["host"] = map[string]any{"os": "linux", "arch": "arm64", "variant": "v8", "cgroupManager": "systemd", "cpus": 8, "memTotal": 1 << 33,
		"emulatedArchitectures": []string{"linux/amd64", "linux/arm64", "nonsense"}}
	hung := podmantest.New(t)
	hung.Handle(http.MethodGet, "/info", podmantest.Stall(nil))
	odd := podmantest.New(t)
	odd.Info["host"] = map[string]any{"os": "linux", "arch": "vax"}
	dead := podmantest.New(t)
	dead.Close()
	targets := []conn.Target{
		{Name: "arm", URI: arm.URI}, {Name: "hung", URI: hung.URI}, {Name: "odd", URI: odd.URI},
		{Name: "dead", URI: dead.URI}, {Name: "ssh-bad", URI: "ssh://root@127.0.0.1:1"},
	}
	recs := Probe(context.Background(), targets, Options{Timeout: 2 * time.Second,
		Declared: map[string][]string{"arm": {"linux/riscv64"}}})
	if len(recs) != len(targets) {
		t.Fatalf("%d records", len(recs))
	}
	a := recs[0]
	if a.Error != "" || !reflect.DeepEqual(a.Native, []string{"linux/arm64"}) || !reflect.DeepEqual(a.Emulated, []string{"linux/amd64", "linux/riscv64"}) ||
		a.CPUs != 8 || a.CgroupManager != "systemd" || a.Podman != "4.3.1" {
		t.Errorf("arm: %+v", a)
	}
	for i, want := range []string{"", "no answer within 2s (--timeout)", "unknown platform", "probing dead", "no socket path"} {
		if want == "" {
			continue
		}
		if !strings.Contains(recs[i].Error, want) {
			t.Errorf("%s: error %q, want %q", recs[i].Name, recs[i].Error, want)
		}
	}
}

func TestProbeBadDeclaredPlatform(t *testing.T) {
	fake := podmantest.New(t)
	fake.Info["host"] = map[string]any{"os": "linux", "arch": "amd64", "emulatedArchitectures": []string{"linux/arm64"}}
	recs := Probe(context.Background(), []conn.Target{{Name: "n", URI: fake.URI}}, Options{Declared: map[string][]string{"n": {"linux/nope"}}})
	if !strings.Contains(recs[0].Error, "fix --emulate n=PLATFORMS") {
		t.Errorf("error %q", recs[0].Error)
	}
}

// A node that reports no emulation itself: binfmt_misc is read through its
// shell (here, this machine's: a unix:// node runs here).
func TestProbeReadsBinfmtWhenTheServiceDoesNotSay(t *testing.T) {
	fake := podmantest.New(t)
	recs := Probe(context.Background(), []conn.Target{{Name: "n", URI: fake.URI}}, Options{})
	if recs[0].Error != "" || !reflect.DeepEqual(recs[0].Native, []string{"linux/amd64"}) {
		t.Errorf("%+v", recs[0])
	}
	for _, p := range recs[0].Emulated {
		if p == "linux/amd64" {
			t.Errorf("the native platform is listed as emulated: %v", recs[0].Emulated)
		}
	}
}

func TestProbeCancelled(t *testing.T) {
	fake := podmantest.New(t)
	fake.Handle(http.MethodGet, "/info", podmantest.Stall(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	recs := Probe(ctx, []conn.Target{{Name: "n", URI: fake.URI}}, Options{})
	if !strings.Contains(recs[0].Error, "deadline exceeded") {
		t.Errorf("error %q", recs[0].Error)
	}
}
