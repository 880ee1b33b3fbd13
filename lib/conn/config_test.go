package conn

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const confText = `[engine]
[engine.service_destinations.b-node]
uri = "ssh://root@10.0.0.2:22/run/podman/podman.sock"
identity = "/keys/b"
[engine.service_destinations.a-node]
uri = "ssh://core@10.0.0.1:2222/run/user/1000/podman/podman.sock"
[farms]
list = { lab = ["b-node", "a-node"], empty = [] }
`

const jsonText = `{"Connection":{"Default":"c-node","Connections":{
  "c-node":{"URI":"unix:///run/podman/podman.sock","Identity":"","IsMachine":false},
  "a-node":{"URI":"ssh://core@10.0.0.9/run/podman/podman.sock","Identity":"/keys/a9"}}},
 "Farm":{"List":{"json-farm":["c-node"]}}}`

// load reads a temporary containers.conf and podman-connections.json, as
// podman would with CONTAINERS_CONF set.
func load(t *testing.T, withJSON bool) *Inventory {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINERS_CONF", conf)
	jsonPath := filepath.Join(dir, "podman-connections.json")
	if withJSON {
		if err := os.WriteFile(jsonPath, []byte(jsonText), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := Load(LoadOptions{ConnectionsJSON: jsonPath})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func names(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name     string
		withJSON bool
		nodes    []string
		farm     string
		want     []string
		wantErr  string
	}{
		{name: "every connection, sorted", want: []string{"a-node", "b-node"}},
		{name: "ad-hoc farm", nodes: []string{"b-node"}, want: []string{"b-node"}},
		{name: "ad-hoc farm dedups", nodes: []string{"b-node", "b-node", "a-node"}, want: []string{"a-node", "b-node"}},
		{name: "named farm", farm: "lab", want: []string{"a-node", "b-node"}},
		{name: "unknown node", nodes: []string{"zz"}, wantErr: `no system connection named "zz" (known: a-node, b-node)`},
		{name: "unknown farm", farm: "nope", wantErr: `no farm named "nope"`},
		{name: "empty farm", farm: "empty", wantErr: `farm "empty" has no nodes`},
		{name: "both flags", nodes: []string{"a-node"}, farm: "lab", wantErr: "exclude each other"},
		{name: "podman 5 connections join", withJSON: true, want: []string{"a-node", "b-node", "c-node"}},
		{name: "podman 5 farm", withJSON: true, farm: "json-farm", want: []string{"c-node"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := load(t, tc.withJSON)
			got, err := inv.Select(tc.nodes, tc.farm)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names(got), tc.want) {
				t.Fatalf("got %v, want %v", names(got), tc.want)
			}
		})
	}
}

func TestLoadReadsURIsAndIdentities(t *testing.T) {
	inv := load(t, true)
	want := map[string]Target{
		"b-node": {Name: "b-node", URI: "ssh://root@10.0.0.2:22/run/podman/podman.sock", Identity: "/keys/b"},
		// podman-connections.json wins over containers.conf, as in podman 5.
		"a-node": {Name: "a-node", URI: "ssh://core@10.0.0.9/run/podman/podman.sock", Identity: "/keys/a9"},
		"c-node": {Name: "c-node", URI: "unix:///run/podman/podman.sock"},
	}
	if !reflect.DeepEqual(inv.Targets, want) {
		t.Fatalf("got %+v\nwant %+v", inv.Targets, want)
	}
}

func TestConnectionsJSONPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PODMAN_CONNECTIONS_CONF": "/x.json", "HOME": "/h"}, "/x.json"},
		{map[string]string{"XDG_CONFIG_HOME": "/cfg", "HOME": "/h"}, "/cfg/containers/podman-connections.json"},
		{map[string]string{"HOME": "/h"}, "/h/.config/containers/podman-connections.json"},
		{map[string]string{}, ""},
	}
	for _, tc := range tests {
		if got := connectionsJSONPath(env(tc.env)); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.env, got, tc.want)
		}
	}
}
