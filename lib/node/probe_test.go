package node

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/podmantest"
	"github.com/farm-build/farm/lib/record"
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

// TestProbeLoad: a unix:// node's load is read through this machine's
// shell: the load average, the free storage podman reports, and the RUN
// steps of the service on the node's socket: here the fake service is
// this test process, so a buildah-oci-runtime it starts is one of its
// builds, and one started by another process is not.
func TestProbeLoad(t *testing.T) {
	fake := podmantest.New(t)
	fake.Info["store"] = map[string]any{"graphRootAllocated": 10 << 30, "graphRootUsed": 4 << 30}
	probe := func() *record.Load {
		t.Helper()
		rec := Probe(context.Background(), []conn.Target{{Name: "n", URI: fake.URI}}, Options{Timeout: 30 * time.Second})[0]
		if rec.Error != "" || rec.Load == nil {
			t.Fatalf("%+v", rec)
		}
		return rec.Load
	}
	if l := probe(); l.Builds != 0 || l.StorageFree != 6<<30 || l.Average <= 0 {
		t.Errorf("idle: %+v, want no build, 6 GiB free, a load average", *l)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe") // buildah's re-executed self: comm "exe"
	if err := os.Symlink("/bin/sh", exe); err != nil {
		t.Fatal(err)
	}
	step := &exec.Cmd{Path: exe, Args: []string{"buildah-oci-runtime", "-c", "sleep 30"}}
	if err := step.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { step.Process.Kill(); step.Wait() })
	// Another service's step: the same process, with another parent.
	other := exec.Command("/bin/sh", "-c", "'"+exe+"' -c 'sleep 30' & wait")
	other.Args[0] = "buildah-oci-runtime"
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	if l := probe(); l.Builds != 1 {
		t.Errorf("one step of the service running: builds %d, want 1", l.Builds)
	}
}

func TestParseLoad(t *testing.T) {
	tests := []struct {
		out  string
		want *record.Load
	}{
		{"qemu-aarch64 /usr/bin/qemu-aarch64-static\n@loadavg 0.52\n@builds 3\n", &record.Load{Builds: 3, Average: 0.52, StorageFree: 7}},
		{"@loadavg 1.00\n", nil},          // the service's socket was not found
		{"@builds 1\n", nil},              // no /proc/loadavg
		{"@loadavg x\n@builds 1\n", nil},  // not a number
		{"@loadavg 1\n@builds -2\n", nil}, // not a count
		{"@loadavg 1\n@claims 2\n@builds 1\n", &record.Load{Builds: 2, Average: 1, StorageFree: 7}}, // a job uploading
		{"@loadavg 1\n@claims 1\n@builds 3\n", &record.Load{Builds: 3, Average: 1, StorageFree: 7}}, // others' steps
		{"@loadavg 1\n@claims x\n@builds 1\n", &record.Load{Builds: 1, Average: 1, StorageFree: 7}},
		{"", nil},
	}
	for _, tc := range tests {
		got := ParseLoad(tc.out, 7)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseLoad(%q) = %+v, want %+v", tc.out, got, tc.want)
		}
	}
	if got := ParseBinfmt("@loadavg 1\n@builds 2\nqemu-aarch64 /x/qemu-aarch64\n"); !reflect.DeepEqual(got, []string{"linux/arm64"}) {
		t.Errorf("ParseBinfmt reads the load's lines: %v", got)
	}
}

// TestProbeCountsClaims: farm jobs' build claims on the node's service
// count in load.builds before any RUN step: a live claim (its file locked)
// counts, a dead one (its file free) does not, nor does another service's.
func TestProbeCountsClaims(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Fatalf("flock(1) is needed: %v", err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	fake := podmantest.New(t)
	dir := filepath.Join(home, ".cache", "farm", "builds", claimKey(SocketPath(fake.URI)))
	otherDir := filepath.Join(home, ".cache", "farm", "builds", claimKey("/elsewhere/podman.sock"))
	for _, d := range []string{dir, otherDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "dead.lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var holders []*exec.Cmd
	for _, f := range []string{filepath.Join(dir, "live.lock"), filepath.Join(otherDir, "other.lock")} {
		h := exec.Command("flock", "-x", f, "sleep", "30")
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, h)
		t.Cleanup(func() { h.Process.Kill(); h.Wait() })
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, h := range holders { // flock(1) made and locked the file
		for exec.Command("flock", "-n", h.Args[2], "true").Run() == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	rec := Probe(context.Background(), []conn.Target{{Name: "n", URI: fake.URI}}, Options{Timeout: 30 * time.Second})[0]
	if rec.Load == nil || rec.Load.Builds != 1 {
		t.Fatalf("one live claim on the service: %+v, want builds 1", rec.Load)
	}
}
