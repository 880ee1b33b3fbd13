package dispatch

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/blang/semver/v4"
	"github.com/containers/buildah/define"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/podman/v4/pkg/domain/entities"
	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/platform"
)

func TestPlatformTag(t *testing.T) {
	tests := []struct {
		tag, plat, want, wantErr string
	}{
		{"localhost:5000/demo:latest", "linux/arm64", "localhost:5000/demo:latest-linux-arm64", ""},
		{"localhost:5000/demo", "linux/amd64", "localhost:5000/demo:latest-linux-amd64", ""},
		{"app:1.0", "linux/arm/v7", "docker.io/library/app:1.0-linux-arm-v7", ""},
		{"quay.io/me/app:v2", "linux/s390x", "quay.io/me/app:v2-linux-s390x", ""},
		{"app@sha256:" + strings.Repeat("a", 64), "linux/amd64", "", "a digest cannot"},
		{"UPPER/case", "linux/amd64", "", "-t"},
	}
	for _, tc := range tests {
		got, err := PlatformTag(tc.tag, platform.MustParse(tc.plat))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.tag, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %s: got %q, %v; want %q", tc.tag, tc.plat, got, err, tc.want)
		}
	}
}

// Tags near the 128-character limit: every platform keeps a tag of its
// own, within the limit, and two long tags differing only at the end stay
// apart (issue 15 item 4: truncation gave both platforms one tag).
func TestPlatformTagLong(t *testing.T) {
	seen := map[string]string{}
	for _, n := range []int{110, 119, 120, 125, 126, 128} {
		for _, last := range []string{"a", "b"} {
			tag := "localhost/app:" + strings.Repeat("x", n-1) + last
			for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"} {
				got, err := PlatformTag(tag, platform.MustParse(p))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := reference.ParseNormalizedNamed(got); err != nil {
					t.Errorf("%s: %v", got, err)
				}
				suffix := "-" + strings.ReplaceAll(p, "/", "-")
				if !strings.HasSuffix(got, suffix) {
					t.Errorf("%s lost its platform %s", got, p)
				}
				if other, dup := seen[got]; dup {
					t.Errorf("%s for both %s and %s %s", got, other, tag, p)
				}
				seen[got] = tag + " " + p
			}
		}
	}
}

func TestReadStream(t *testing.T) {
	id := strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		stream   string
		wantID   string
		wantLogs []string
		failed   bool
		wantErr  string
	}{
		{name: "success", stream: `{"stream":"STEP 1/2: FROM x\n"}{"stream":"STEP 2/2: RUN true\n"}{"stream":"` + id + `\n"}`,
			wantID: id, wantLogs: []string{"STEP 1/2: FROM x", "STEP 2/2: RUN true", id}},
		{name: "line split over messages", stream: `{"stream":"hel"}{"stream":"lo\nwor"}{"stream":"ld\n` + id + `\n"}`,
			wantID: id, wantLogs: []string{"hello", "world", id}},
		{name: "build fails", stream: `{"stream":"STEP 1/1: RUN false\n"}{"error":"exit status 1","errorDetail":{"message":"building at STEP \"RUN false\": exit status 1"}}`,
			failed: true, wantErr: `building at STEP "RUN false": exit status 1 (build log ends: STEP 1/1: RUN false)`, wantLogs: []string{"STEP 1/1: RUN false"}},
		{name: "failure carries the log tail", stream: `{"stream":"STEP 1/2: FROM x\nSTEP 2/2: RUN a\nl1\n\nl2\nl3\nl4\ncontainer exited on killed\n"}` +
			`{"error":"exit status 1","errorDetail":{"message":"building at STEP \"RUN a\": while running runtime: exit status 1"}}`,
			failed: true, wantErr: `building at STEP "RUN a": while running runtime: exit status 1 (build log ends: l1 | l2 | l3 | l4 | container exited on killed)`},
		{name: "server gone mid-stream", stream: `{"stream":"STEP 1/1\n"}{"stre`, wantErr: "reading the build stream"},
		{name: "no id", stream: `{"stream":"STEP 1/1\n"}`, wantErr: "without an image id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs []string
			got, err := readStream(strings.NewReader(tc.stream), func(l string) { logs = append(logs, l) })
			if tc.failed != fault.Is(err, fault.Deterministic) {
				t.Fatalf("deterministic: got %v, want %v (%v)", !tc.failed, tc.failed, err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil || got != tc.wantID {
				t.Fatalf("got %q, %v", got, err)
			}
			if tc.wantLogs != nil && !reflect.DeepEqual(logs, tc.wantLogs) {
				t.Fatalf("logs %q, want %q", logs, tc.wantLogs)
			}
		})
	}
}

// TestParams: each job's request is the run's options with its own
// platform and cgroup parent, naming no image (see Runner.build); the rest
// is what podman-remote sends (see TestQueryMatchesBindings).
func TestParams(t *testing.T) {
	opts := entities.BuildOptions{}
	opts.Output, opts.AdditionalTags = "r/x:1", []string{"r/x:2"}
	opts.Target = "final"
	opts.Args = map[string]string{"V": "1,2"}
	opts.CommonBuildOpts = &define.CommonBuildOptions{CgroupParent: "/theirs", Secrets: []string{"id=x,src=/home/me/x"}, AddHost: []string{"db:10.0.0.2"}}
	req := request{
		spec:     &Spec{Options: opts, Containerfiles: []string{"build/Containerfile"}, Secrets: []string{"id=x,src=podman-build-secret-1"}},
		platform: platform.MustParse("arm/v7"), cgroup: "/farm-1", marker: marker("farm-1"),
	}
	p, err := req.params()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"platform": "linux/arm/v7", "dockerfile": `["build/Containerfile"]`,
		"buildargs": `{"V":"1,2"}`, "target": "final", "cgroupparent": "/farm-1", "secrets": `["id=x,src=podman-build-secret-1"]`,
		"networkmode": "0", "isolation": "0", "rm": "0", "omithistory": "0",
		"extrahosts": `["db:10.0.0.2","farm-1.invalid:127.0.0.1"]`,
	}
	for k, v := range want {
		if p.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, p.Get(k), v)
		}
	}
	if tags := p["t"]; len(tags) != 1 || tags[0] != "" || p.Has("output") {
		t.Errorf("t = %q, output = %q: want the one empty t podman-remote sends without -t, no output", tags, p.Get("output"))
	}
	if opts.CommonBuildOpts.CgroupParent != "/theirs" || len(opts.CommonBuildOpts.AddHost) != 1 {
		t.Error("params changed the run's options")
	}
}

func TestCgroupParent(t *testing.T) {
	if got := cgroupParent("systemd", "farm-1"); got != "farm-1.slice" {
		t.Errorf("systemd: %q", got)
	}
	if got := cgroupParent("cgroupfs", "farm-1"); got != "/farm-1" {
		t.Errorf("cgroupfs: %q", got)
	}
	run := newRunID()
	a, b := newJobID(run), newJobID(run)
	if a == b || !regexp.MustCompile(`^farm-[0-9a-f]{20}$`).MatchString(a) || !strings.HasPrefix(b, "farm-"+run) {
		t.Errorf("job ids must be unique, farm- then 20 hex digits, the run's 12 first: %s %s (run %s)", a, b, run)
	}
}

// TestParamsCache: the farm-wide layer cache is sent as --cache-from and
// --cache-to, with TLS off (plain HTTP on the node's 127.0.0.1), in the
// form the node's podman reads: a JSON list from 4.4 on, one plain
// repository before (4.3.1 answers a list with 400).
func TestParamsCache(t *testing.T) {
	const farm = "127.0.0.1:23001/farm-cache/linux-amd64"
	theirs := func(repos ...string) *Spec {
		s := &Spec{}
		for _, r := range repos {
			s.Options.CacheFrom = append(s.Options.CacheFrom, mustNamed(t, r))
		}
		return s
	}
	for _, tc := range []struct {
		name           string
		spec           *Spec
		cache, version string
		from, to, tls  string
		err            string
	}{
		{"no cache", &Spec{}, "", "4.9.5", "", "", "", ""},
		{"farm, podman 4.9", &Spec{}, farm, "4.9.5", `["` + farm + `"]`, `["` + farm + `"]`, "false", ""},
		{"farm, podman 5.4", &Spec{}, farm, "5.4.2", `["` + farm + `"]`, `["` + farm + `"]`, "false", ""},
		{"farm, podman 4.3", &Spec{}, farm, "4.3.1", farm, farm, "false", ""},
		{"farm, version unknown", &Spec{}, farm, "", `["` + farm + `"]`, `["` + farm + `"]`, "false", ""},
		{"theirs, podman 4.3", theirs("r.example/c"), "", "4.3.1", "r.example/c", "", "", ""},
		{"theirs, podman 4.4", theirs("r.example/c"), "", "4.4.0", `["r.example/c"]`, "", "", ""},
		{"two of theirs, podman 4.3", theirs("r.example/c", "r.example/d"), "", "4.3.1", "", "", "", "podman 4.3.1 on the node takes one --cache-from repository, not 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request{spec: tc.spec, platform: platform.MustParse("linux/amd64"), cache: tc.cache}
			if tc.version != "" {
				v := semver.MustParse(tc.version)
				req.version = &v
			}
			p, err := req.params()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]string{"cachefrom": tc.from, "cacheto": tc.to, "tlsVerify": tc.tls} {
				if got := p.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func mustNamed(t *testing.T, s string) reference.Named {
	t.Helper()
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCacheWatch: a build's log passes through unchanged, and the entries
// it pulled from its own cache repository are noted (to drop their names
// on the node afterwards); a farm-cache line of another repository is not.
func TestCacheWatch(t *testing.T) {
	const repo = "127.0.0.1:23001/farm-cache/linux-amd64"
	key := strings.Repeat("ab", 32)
	c := &cacheUse{repo: repo}
	var got []string
	log := c.watch(func(line string) { got = append(got, line) })
	lines := []string{
		"STEP 2/3: COPY nonce /nonce",
		"--> Cache pulled from remote " + repo + ":" + key,
		"--> Cache pulled from remote 127.0.0.1:23002/farm-cache/linux-amd64:" + key,
		"--> Pushing cache " + repo + ":" + key,
	}
	for _, l := range lines {
		log(l)
	}
	if !reflect.DeepEqual(got, lines) {
		t.Errorf("log lines %q, want %q", got, lines)
	}
	if want := []string{repo + ":" + key}; !reflect.DeepEqual(c.pulled, want) {
		t.Errorf("pulled %q, want %q", c.pulled, want)
	}
	var none *cacheUse
	if none.name() != "" || none.watch(nil) != nil {
		t.Error("no cache: want no repository and the log as it was")
	}
}
