package buildflags

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/conn"
	"github.com/urfave/cli/v2"
)

func TestPreconnect(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte(`[engine]
[engine.service_destinations.a]
uri = "ssh://root@10.0.0.1/run/podman/podman.sock"
[engine.service_destinations.b]
uri = "ssh://root@10.0.0.2/run/podman/podman.sock"
identity = "/keys/b"
[farms]
list = { lab = ["a", "b"] }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINERS_CONF", conf)
	t.Setenv("PODMAN_CONNECTIONS_CONF", filepath.Join(t.TempDir(), "none.json"))
	for _, tc := range []struct {
		args    []string
		want    []string // names
		wantErr string
	}{
		{nil, nil, ""},
		{[]string{"--preconnect", "b"}, []string{"b"}, ""},
		{[]string{"--preconnect", "b,a", "--preconnect", "a"}, []string{"a", "b"}, ""},
		{[]string{"--preconnect-farm", "lab"}, []string{"a", "b"}, ""},
		{[]string{"--preconnect", "zz"}, nil, `--preconnect: no system connection named "zz"`},
		{[]string{"--preconnect-farm", "nope"}, nil, `--preconnect: no farm named "nope"`},
		{[]string{"--preconnect", "a", "--preconnect-farm", "lab"}, nil, "exclude each other"},
	} {
		var got []conn.Target
		app := &cli.App{
			Flags: []cli.Flag{&cli.StringSliceFlag{Name: "preconnect"}, &cli.StringFlag{Name: "preconnect-farm"}},
			// as farm-build: lists are not split on commas
			DisableSliceFlagSeparator: true,
			Action: func(c *cli.Context) (err error) {
				got, err = Preconnect(c)
				return err
			},
		}
		err := app.Run(append([]string{"farm-build"}, tc.args...))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		var names []string
		for _, g := range got {
			names = append(names, g.Name)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("%q: %v, want %v", tc.args, names, tc.want)
		}
		if i := slices.IndexFunc(got, func(g conn.Target) bool { return g.Name == "b" }); i >= 0 && got[i].Identity != "/keys/b" {
			t.Errorf("%q: b's identity %q, want /keys/b", tc.args, got[i].Identity)
		}
	}
}
