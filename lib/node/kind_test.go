package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/record"
)

// fakeService answers /_ping with apiVersion (no header when empty) and
// /info with info, as a podman service would.
func fakeService(t *testing.T, apiVersion, info string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if apiVersion != "" {
			w.Header().Set("Libpod-API-Version", apiVersion)
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			fmt.Fprint(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/info"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, info)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
}

const (
	rootfulInfo = `{"host":{"os":"linux","arch":"amd64","cpus":2,"memTotal":1024,"cgroupManager":"cgroupfs","cgroupVersion":"v1","security":{"rootless":false}},"version":{"Version":"4.3.1"},` +
		`"store":{"graphRoot":"/var/lib/containers/storage"}}`
	rootlessInfo = `{"host":{"os":"linux","arch":"amd64","cpus":2,"memTotal":1024,"cgroupManager":"systemd","cgroupVersion":"v2","security":{"rootless":true},` +
		`"idMappings":{"uidmap":[{"container_id":0,"host_id":1000,"size":1},{"container_id":1,"host_id":100000,"size":65536}]}},"version":{"Version":"5.4.2"}}`
	noSubuidInfo = `{"host":{"os":"linux","arch":"amd64","cpus":2,"memTotal":1024,"cgroupManager":"cgroupfs","cgroupVersion":"v1","security":{"rootless":true},` +
		`"idMappings":{"uidmap":[{"container_id":0,"host_id":1000,"size":1}]}},"version":{"Version":"4.3.1"}}`
	oldInfo = `{"host":{"os":"linux","arch":"amd64","cpus":2,"memTotal":1024,"security":{"rootless":false}},"version":{"Version":"3.4.4"}}`
)

// TestProbeFaults: a node that is too old, answers something unexpected or
// is rootless without a subuid range becomes a record whose error names the
// node and what is wrong, never a crash; good nodes tell their kind.
func TestProbeFaults(t *testing.T) {
	tests := []struct {
		name, api, info string
		wantErr         []string // substrings of the record's error; none: no error
		want            record.Node
	}{
		{"rootful", "4.3.1", rootfulInfo, nil,
			record.Node{Podman: "4.3.1", CgroupManager: "cgroupfs", CgroupVersion: "v1", Stop: record.StopNone, GraphRoot: "/var/lib/containers/storage"}},
		{"rootless v2 systemd", "5.4.2", rootlessInfo, nil,
			record.Node{Podman: "5.4.2", CgroupManager: "systemd", CgroupVersion: "v2", Rootless: true, Stop: record.StopNone}},
		{"API older than 4", "3.4.4", oldInfo, []string{"probing old-api", "podman 3.4.4 is too old", "4.0 or later"}, record.Node{}},
		{"version older than 4 without header", "", oldInfo, []string{"probing old-info", "podman 3.4.4 is too old"}, record.Node{Podman: "3.4.4"}},
		{"not JSON", "4.3.1", "<html>proxy error</html>", []string{"probing garbage", "unexpected answer", "Libpod-API-Version 4.3.1"}, record.Node{}},
		{"JSON of something else", "4.3.1", `{"kernel":"6.1"}`, []string{"probing other", "is this a podman service"}, record.Node{}},
		{"bad version", "4.3.1", strings.Replace(rootfulInfo, `"4.3.1"`, `"dev"`, 1), []string{"probing badver", `unexpected podman version "dev"`}, record.Node{Podman: "dev"}},
		{"rootless without subuid", "4.3.1", noSubuidInfo, []string{"probing nosub", "no line in /etc/subuid"}, record.Node{Podman: "4.3.1"}},
	}
	names := map[string]string{"API older than 4": "old-api", "version older than 4 without header": "old-info", "not JSON": "garbage",
		"JSON of something else": "other", "bad version": "badver", "rootless without subuid": "nosub"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := names[tc.name]
			if name == "" {
				name = "good"
			}
			target := conn.Target{Name: name, URI: fakeService(t, tc.api, tc.info)}
			got := Probe(context.Background(), []conn.Target{target}, Options{Timeout: 20 * time.Second})[0]
			for _, w := range tc.wantErr {
				if !strings.Contains(got.Error, w) {
					t.Errorf("error %q lacks %q", got.Error, w)
				}
			}
			if len(tc.wantErr) == 0 && got.Error != "" {
				t.Fatalf("unexpected error: %s", got.Error)
			}
			if got.Podman != tc.want.Podman || got.Rootless != tc.want.Rootless || got.CgroupManager != tc.want.CgroupManager ||
				got.CgroupVersion != tc.want.CgroupVersion || got.Stop != tc.want.Stop || got.GraphRoot != tc.want.GraphRoot {
				t.Errorf("got podman %q rootless %v cgroup %q/%q stop %q graph root %q, want %+v", got.Podman, got.Rootless,
					got.CgroupManager, got.CgroupVersion, got.Stop, got.GraphRoot, tc.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		rootless, shell bool
		stop            string
		parent          bool
	}{
		{false, true, record.StopCgroup, true},
		{true, true, record.StopRuntime, false},
		{false, false, record.StopNone, true},
		{true, false, record.StopNone, false},
	}
	for _, tc := range tests {
		var i Info
		i.Host.Security.Rootless = tc.rootless
		k := KindOf(&i, tc.shell)
		if k.Stop != tc.stop || k.CgroupParentAllowed() != tc.parent {
			t.Errorf("rootless %v shell %v: stop %q parent %v, want %q %v", tc.rootless, tc.shell, k.Stop, k.CgroupParentAllowed(), tc.stop, tc.parent)
		}
		var n record.Node
		k.Apply(&n)
		if back, ok := FromRecord(n); !ok || back != k {
			t.Errorf("FromRecord(Apply(%+v)) = %+v, %v", k, back, ok)
		}
	}
	if _, ok := FromRecord(record.Node{CgroupManager: "cgroupfs"}); ok {
		t.Error("a record without stop must not tell a kind")
	}
}
