package buildflags

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/containers/common/pkg/config"
	podmancommon "github.com/containers/podman/v4/cmd/podman/common"
	"github.com/containers/podman/v4/cmd/podman/registry"
	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/farm-build/farm/lib/dispatch"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/urfave/cli/v2"
)

// podmanCommand is `podman --remote build` as podman 4.9.5 defines it.
func podmanCommand(t *testing.T) (*cobra.Command, *podmancommon.BuildFlagsWrapper) {
	t.Helper()
	cfg := registry.PodmanConfig()
	if cfg.ContainersConf == nil {
		def, err := config.Default()
		if err != nil {
			t.Fatal(err)
		}
		cfg.ContainersConf, cfg.ContainersConfDefaultsRO = def, def
	}
	cmd := &cobra.Command{Use: "build"}
	w := &podmancommon.BuildFlagsWrapper{}
	podmancommon.DefineBuildFlags(cmd, w, false)
	return cmd, w
}

// TestTableCoversPodmansFlags: every flag of podman's build command has a
// status, and the set farm-build parses with is podman's.
func TestTableCoversPodmansFlags(t *testing.T) {
	cmd, _ := podmanCommand(t)
	var podman []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) { podman = append(podman, f.Name) })
	sort.Strings(podman)
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !reflect.DeepEqual(got, podman) {
		t.Errorf("farm's flag set differs from podman's:\nfarm   %q\npodman %q", got, podman)
	}
	var table []string
	for name, st := range Table {
		table = append(table, name)
		if (st.Kind == Sent) != (st.Why == "") {
			t.Errorf("%s: %s with reason %q", name, st.Kind, st.Why)
		}
	}
	sort.Strings(table)
	if !reflect.DeepEqual(table, podman) {
		t.Errorf("Table differs from podman's flags:\ntable  %q\npodman %q", table, podman)
	}
}

// TestDocsTable: docs/farm-build.md lists every podman build flag with its
// status as Table has it.
func TestDocsTable(t *testing.T) {
	data, err := os.ReadFile("../../docs/farm-build.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "<!-- podman-flags -->")
	end := strings.Index(doc, "<!-- /podman-flags -->")
	if start < 0 || end < start {
		t.Fatal("docs/farm-build.md has no <!-- podman-flags --> table")
	}
	if got, want := doc[start+len("<!-- podman-flags -->\n"):end], DocsTable(); got != want {
		t.Errorf("the flag table in docs/farm-build.md is out of date; it should read:\n%s", want)
	}
}

// capture is a podman service that records each build request's query and
// answers with an image id.
func capture(t *testing.T) (context.Context, *url.Values) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := &url.Values{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			w.Header().Set("Libpod-API-Version", "4.9.5")
			return
		}
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		*got = r.URL.Query()
		mu.Unlock()
		io.WriteString(w, `{"stream":"`+strings.Repeat("ab", 32)+`\n"}`)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ctx, err := bindings.NewConnection(context.Background(), "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, got
}

// podmanQuery is what `podman --remote build ARGS DIR` sends.
func podmanQuery(t *testing.T, ctx context.Context, got *url.Values, dir string, args []string) url.Values {
	t.Helper()
	cmd, w := podmanCommand(t)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("podman: %v", err)
	}
	opts, err := podmancommon.ParseBuildOpts(cmd, []string{dir}, w)
	if err != nil {
		t.Fatalf("podman: %v", err)
	}
	opts.Out = io.Discard
	if _, err := images.Build(ctx, opts.ContainerFiles, *opts); err != nil {
		t.Fatalf("podman: %v", err)
	}
	return *got
}

// farmQuery is what farm-build sends for the same command line, before the
// per-job parameters.
func farmQuery(t *testing.T, args []string) (url.Values, error) {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var q url.Values
	app := &cli.App{
		Flags: append(s.CLIFlags(),
			&cli.StringSliceFlag{Name: "tag", Aliases: []string{"t"}},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}},
			&cli.StringFlag{Name: "progress"}, &cli.StringFlag{Name: "jobs"}),
		DisableSliceFlagSeparator: true,
		Action: func(c *cli.Context) error {
			if err := s.Load(c); err != nil {
				return err
			}
			opts, err := s.Options()
			if err != nil {
				return err
			}
			opts.Output = c.StringSlice("tag")[0]
			q, err = dispatch.Query(opts)
			return err
		},
	}
	err = app.Run(append([]string{"farm-build"}, args...))
	return q, err
}

// jsonParams are compared as values: podman's JSON encoder leaves map keys
// in Go's random order.
var jsonParams = map[string]bool{
	"addcaps": true, "annotations": true, "buildargs": true, "cachefrom": true, "cacheto": true,
	"devices": true, "dnsoptions": true, "dnssearch": true, "dnsservers": true, "dropcaps": true,
	"excludes": true, "extrahosts": true, "idmappingoptions": true, "labelopts": true, "labels": true,
	"nsoptions": true, "ulimits": true, "cppflags": true,
}

// perRequest are set for each job or from the context, not from the flags.
var perRequest = map[string]bool{"dockerfile": true, "secrets": true}

func sameQuery(t *testing.T, farm, podman url.Values) {
	t.Helper()
	for k := range podman {
		if _, ok := farm[k]; !ok && !perRequest[k] {
			t.Errorf("%s: podman sends %q, farm nothing", k, podman[k])
		}
	}
	for k, fv := range farm {
		pv, ok := podman[k]
		switch {
		case !ok:
			t.Errorf("%s: farm sends %q, podman nothing", k, fv)
		case jsonParams[k]:
			var a, b any
			json.Unmarshal([]byte(fv[0]), &a)
			json.Unmarshal([]byte(pv[0]), &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s: farm %s, podman %s", k, fv[0], pv[0])
			}
		case !reflect.DeepEqual(fv, pv):
			t.Errorf("%s: farm %q, podman %q", k, fv, pv)
		}
	}
}

func TestQueryMatchesPodmanRemote(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM scratch\n"), 0o644)
	argFile := filepath.Join(dir, "args.conf")
	os.WriteFile(argFile, []byte("A=from-file\nB=2\n"), 0o644)
	ignore := filepath.Join(dir, "my.ignore")
	os.WriteFile(ignore, []byte("# c\n*.log\n!keep.log\n"), 0o644)
	t.Setenv("FARM_TEST_ENV", "from-env")
	ctx, got := capture(t)
	tests := [][]string{
		{}, // the defaults: network, isolation, layers, rm, ulimits...
		{"--network", "none"},
		{"--network=host"},
		{"--net", "private"},
		{"--build-arg", "X=1,2", "--build-arg", "FARM_TEST_ENV", "--build-arg-file", argFile, "--build-arg", "B"},
		{"--label", "a=b=c", "--annotation", "org.x=1", "--layer-label", "l=1", "--unsetlabel", "u"},
		{"--env", "A=1", "--env", "FARM_TEST_ENV", "--unsetenv", "PATH"},
		{"--cache-from", "127.0.0.1:5000/cache", "--cache-to", "127.0.0.1:5000/cache", "--cache-ttl", "1h"},
		{"--add-host", "db:10.0.0.2", "--dns", "1.1.1.1", "--dns-option", "ndots:2", "--dns-search", "example.com"},
		{"--cap-add", "NET_ADMIN,SYS_TIME", "--cap-drop", "CHOWN", "--security-opt", "label=disable", "--security-opt", "no-new-privileges"},
		{"--ulimit", "nofile=2048:4096", "--shm-size", "128m", "--memory", "1g", "--memory-swap", "-1", "--cpu-shares", "512", "--cpuset-cpus", "0"},
		{"--squash"}, {"--squash-all"}, {"--squash-all", "--layers"}, {"--layers=false"},
		{"--timestamp", "0", "--omit-history"},
		{"--isolation", "chroot"}, {"--isolation", "rootless"},
		{"--userns", "host"}, {"--userns-uid-map", "0:100000:65536", "--userns-gid-map", "0:100000:65536"},
		{"--ipc", "host", "--pid", "private", "--uts", "host", "--cgroupns", "private"},
		{"--pull=always"}, {"--pull=never"}, {"--pull=newer"}, {"--pull=false"}, {"--pull-always"},
		{"--no-cache", "--rm=false", "--force-rm=false", "--quiet", "--target", "final", "--from", "localhost/busybox:amd64"},
		{"--format", "docker"}, {"--identity-label=false", "--skip-unused-stages=false", "--http-proxy=false"},
		{"--os-version", "10", "--os-feature", "win32k", "--device", "/dev/fuse", "--volume", "/srv:/srv:ro", "--group-add", "keep-groups"},
		{"--ignorefile", ignore}, {"--log-rusage"}, {"--cpp-flag", "-DX"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			args := append([]string{"-t", "localhost/x:1"}, args...)
			farm, err := farmQuery(t, args)
			if err != nil {
				t.Fatalf("farm: %v", err)
			}
			sameQuery(t, farm, podmanQuery(t, ctx, got, dir, args))
		})
	}
}

// TestDefaultsPrivateNetwork: without --network, RUN steps get podman's
// private network, not the node's: nsoptions is sent (without it the
// service runs RUN in the host's network namespace).
func TestDefaultsPrivateNetwork(t *testing.T) {
	q, err := farmQuery(t, []string{"-t", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("nsoptions") == "" || q.Get("networkmode") != "0" || strings.Contains(q.Get("nsoptions"), `"Name":"network","Host":true`) {
		t.Errorf("default request: nsoptions %q networkmode %q", q.Get("nsoptions"), q.Get("networkmode"))
	}
}

// TestBadValues are refused before anything is sent, in podman's words.
func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "none", "--dns", "1.1.1.1"}, "the --dns option cannot be used with --network=none"},
		{[]string{"--squash", "--layers"}, "cannot specify --squash with --layers"},
		{[]string{"--isolation", "bogus"}, `unrecognized isolation type "bogus"`},
		{[]string{"--network", "bridge", "--isolation", "chroot"}, "cannot set --network other than host with --isolation chroot"},
		{[]string{"--shm-size", "lots"}, "invalid --shm-size"},
		{[]string{"--memory", "lots"}, "invalid value for memory"},
		{[]string{"--add-host", "nocolon"}, "invalid value for add-host"},
		{[]string{"--cpu-shares", "x"}, `invalid argument "x" for "--cpu-shares" flag`},
		{[]string{"--timestamp", "yesterday"}, `invalid argument "yesterday" for "--timestamp" flag`},
		{[]string{"--cache-from", "UPPER/x"}, "unable to parse value provided"},
		{[]string{"--cache-ttl", "soon"}, "unable to parse value provided \"soon\" as --cache-ttl"},
		{[]string{"--security-opt", "bogus"}, "invalid --security-opt name=value pair"},
		{[]string{"--format", "tar"}, `unrecognized image type "tar"`},
		{[]string{"--pull=sometimes"}, `--pull "sometimes"`},
		{[]string{"--userns-uid-map", "0:1"}, "is not in the form containerid:hostid:size"},
		{[]string{"--ssh", "default"}, "--ssh is not supported by farm-build"},
		{[]string{"--output", "type=local,dest=out"}, "not supported in remote mode"},
		{[]string{"--cgroup-parent", "/x"}, "--cgroup-parent is not supported by farm-build"},
	} {
		_, err := farmQuery(t, append([]string{"-t", "x"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestSecrets: a secret's file goes in the context under a name of its own
// that src then names, as podman-remote sends it; a missing file is an
// error naming the id; secrets from the environment are refused.
func TestSecrets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("v"), 0o600)
	extra, sent, err := secrets([]string{"id=tok,src=" + file + ",type=file"})
	if err != nil || len(extra) != 1 || extra[0].Path != file || !strings.HasPrefix(extra[0].Name, "podman-build-secret-") ||
		!reflect.DeepEqual(sent, []string{"id=tok,src=" + extra[0].Name + ",type=file"}) {
		t.Fatalf("got %+v %q %v", extra, sent, err)
	}
	for _, tc := range []struct{ value, want string }{
		{"id=tok,src=/nonexistent/token", "--secret id=tok: "},
		{"id=tok,env=HOME", "--secret id=tok: secrets from environment variables are not supported"},
		{"src=" + file, "incorrect secret flag format"},
	} {
		if _, _, err := secrets([]string{tc.value}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.value, err, tc.want)
		}
	}
}

// TestLayerCache: --layer-cache farm asks for the farm-wide layer cache;
// what it cannot work with is refused before anything is sent.
func TestLayerCache(t *testing.T) {
	for _, tc := range []struct {
		args []string
		farm bool
		err  string
	}{
		{nil, false, ""},
		{[]string{"--layer-cache", "node"}, false, ""},
		{[]string{"--layer-cache", "farm"}, true, ""},
		{[]string{"--layer-cache", "everywhere"}, false, `--layer-cache "everywhere": want node or farm`},
		{[]string{"--layer-cache", "farm", "--push"}, false, "which --push does not run"},
		{[]string{"--layer-cache", "farm", "--cache-from", "r.example/c"}, false, "sets --cache-from itself"},
		{[]string{"--layer-cache", "farm", "--cache-to", "r.example/c"}, false, "sets --cache-to itself"},
	} {
		s, err := New()
		if err != nil {
			t.Fatal(err)
		}
		var spec dispatch.Spec
		app := &cli.App{Flags: Flags(s), Action: func(c *cli.Context) (err error) {
			spec, _, err = Spec(c, s)
			return err
		}}
		err = app.Run(append([]string{"farm-build", "-t", "x"}, tc.args...))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || spec.FarmCache != tc.farm {
			t.Errorf("%q: error %v, farm cache %v; want %v", tc.args, err, spec.FarmCache, tc.farm)
		}
	}
}
