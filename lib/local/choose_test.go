package local

import (
	"errors"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/conn"
)

func TestChoose(t *testing.T) {
	inv := &conn.Inventory{
		Targets: map[string]conn.Target{
			"machine": {Name: "machine", URI: "ssh://core@127.0.0.1:2290/run/podman/podman.sock", Identity: "/k/machine"},
			"other":   {Name: "other", URI: "ssh://root@10.0.0.2/run/podman/podman.sock", Identity: "/k/other"},
		},
		Sources: []string{"containers.conf"},
	}
	withDefault := func(name string) *conn.Inventory { c := *inv; c.Default = name; return &c }
	tests := []struct {
		name    string
		req     Request
		env     map[string]string
		inv     *conn.Inventory
		want    Choice // the first choice
		wantErr string
	}{
		{name: "--url beats everything", req: Request{URL: "unix:///x.sock", Connection: "other"}, env: map[string]string{"CONTAINER_HOST": "unix:///h.sock"}, inv: withDefault("other"),
			want: Choice{URI: "unix:///x.sock", Source: "--url", Explicit: true}},
		{name: "--connection beats the environment", req: Request{Connection: "machine"}, env: map[string]string{"CONTAINER_HOST": "unix:///h.sock", "CONTAINER_CONNECTION": "other"}, inv: inv,
			want: Choice{URI: inv.Targets["machine"].URI, Identity: "/k/machine", Source: "--connection machine", Explicit: true}},
		{name: "CONTAINER_HOST with CONTAINER_SSHKEY", env: map[string]string{"CONTAINER_HOST": "ssh://a@b/s.sock", "CONTAINER_SSHKEY": "/k/env", "CONTAINER_CONNECTION": "other"}, inv: withDefault("other"),
			want: Choice{URI: "ssh://a@b/s.sock", Identity: "/k/env", Source: "CONTAINER_HOST", Explicit: true}},
		{name: "CONTAINER_CONNECTION beats the default", env: map[string]string{"CONTAINER_CONNECTION": "machine"}, inv: withDefault("other"),
			want: Choice{URI: inv.Targets["machine"].URI, Identity: "/k/machine", Source: "CONTAINER_CONNECTION=machine", Explicit: true}},
		{name: "the default connection", inv: withDefault("machine"),
			want: Choice{URI: inv.Targets["machine"].URI, Identity: "/k/machine", Source: "default connection machine", Explicit: true}},
		{name: "no default: the local socket", inv: inv, want: Choice{URI: "unix:///run/user/1000/podman/podman.sock", Source: "local socket"}, env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}},
		{name: "a default that points nowhere", inv: withDefault("gone"), wantErr: "default connection gone names no system connection"},
		{name: "an unknown --connection", req: Request{Connection: "nope"}, inv: inv, wantErr: "--connection nope names no system connection"},
		{name: "an unknown CONTAINER_CONNECTION", env: map[string]string{"CONTAINER_CONNECTION": "nope"}, inv: inv, wantErr: "CONTAINER_CONNECTION=nope names no system connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			got, err := Choose(tt.req, getenv, func() (*conn.Inventory, error) { return tt.inv, nil })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.Source == "local socket" && !strings.HasPrefix(got[0].URI, "unix://") {
				t.Fatalf("got %+v, want a local socket", got)
			}
			if tt.want.Source != "local socket" && got[0] != tt.want {
				t.Fatalf("got %+v, want %+v", got[0], tt.want)
			}
			if got[0].Source != tt.want.Source {
				t.Fatalf("source %q, want %q", got[0].Source, tt.want.Source)
			}
		})
	}
}

// A connections file that cannot be read is an error, not a silent private
// service; --url and CONTAINER_HOST do not read it.
func TestChooseConnectionsUnreadable(t *testing.T) {
	bad := func() (*conn.Inventory, error) { return nil, errors.New("reading containers.conf: broken") }
	if _, err := Choose(Request{}, func(string) string { return "" }, bad); err == nil {
		t.Fatal("an unreadable containers.conf was ignored")
	}
	if c, err := Choose(Request{URL: "unix:///x.sock"}, func(string) string { return "" }, bad); err != nil || c[0].URI != "unix:///x.sock" {
		t.Fatalf("--url read the connections: %v %v", c, err)
	}
}
