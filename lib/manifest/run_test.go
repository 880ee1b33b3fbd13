package manifest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/podmantest"
)

func TestRun(t *testing.T) {
	fake, _, _ := localFixture(t)
	t.Setenv("CONTAINER_HOST", fake.URI)
	t.Setenv("TMPDIR", t.TempDir())
	amd := podmantest.BuildID("amd")
	img := `{"v":1,"kind":"image","platform":"linux/amd64","node":"n","id":"` + amd + `","tag":"localhost/app:1","ref":"localhost/app:1-linux-amd64","transfer":"archive"}` + "\n"
	pushed := `{"v":1,"kind":"image","platform":"linux/amd64","node":"n","id":"` + amd + `","digest":"sha256:` + strings.Repeat("a", 64) + `","tag":"127.0.0.1:1/app:1","ref":"127.0.0.1:1/app@sha256:` + strings.Repeat("a", 64) + `","transfer":"push"}` + "\n"
	failed := `{"v":1,"kind":"error","stage":"farm-build","platform":"linux/arm64","error":"RUN false"}` + "\n"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name, in string
		opts     RunOptions
		out      []string
		err      string
		usage    bool
	}{
		{name: "local list, pushed", in: img, opts: RunOptions{Push: "127.0.0.1:5000/app:1"}, out: []string{`"kind":"manifest"`, `"pushed":"docker://127.0.0.1:5000/app:1"`}},
		{name: "partial", in: img + failed, opts: RunOptions{AllowPartial: true}, out: []string{`"kind":"error"`, `"kind":"manifest"`}},
		{name: "not partial", in: img + failed, err: "failed upstream"},
		{name: "no tag", in: strings.Replace(img, `"tag":"localhost/app:1",`, "", 1), err: "carry no tag", usage: true},
		{name: "pushed, DEST elsewhere", in: pushed, opts: RunOptions{Push: "quay.io/me/app:1"}, err: "cannot be pushed elsewhere", usage: true},
		{name: "pushed, bad name", in: pushed, opts: RunOptions{Name: "UPPER", Push: "x"}, err: "list name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Stage = "farm-manifest"
			var out bytes.Buffer
			in := tc.in + `{"v":1,"kind":"end","stage":"farm-build"}` + "\n"
			err := Run(context.Background(), tc.opts, strings.NewReader(in), &out, quiet)
			if tc.err == "" && err != nil {
				t.Fatal(err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if errors.Is(err, ErrUsage) != tc.usage {
				t.Errorf("usage error: %v, want %v", !tc.usage, tc.usage)
			}
			for _, want := range tc.out {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
