package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/record"
)

func TestRead(t *testing.T) {
	img := func(p, id string) string {
		return `{"v":1,"kind":"image","platform":"` + p + `","id":"` + id + `","tag":"r/x:1"}` + "\n"
	}
	failed := `{"v":1,"kind":"error","stage":"farm-build","error":"exit status 1","platform":"linux/arm64"}` + "\n"
	end := `{"v":1,"kind":"end","stage":"farm-build"}` + "\n"
	tests := []struct {
		name, in       string
		imgs, failures int
		wantErr        string
	}{
		{name: "two images", in: img("linux/amd64", "a") + img("linux/arm64", "b") + end, imgs: 2},
		{name: "image and failure", in: img("linux/amd64", "a") + failed + end, imgs: 1, failures: 1},
		{name: "only failures", in: failed + end, failures: 1, wantErr: "only errors: linux/arm64 (exit status 1)"},
		{name: "nothing after the end is read", in: img("linux/amd64", "a") + end + img("linux/arm64", "b"), imgs: 1},
		// farm-build died: what arrived comes back with the truncation,
		// for --allow-partial.
		{name: "truncated", in: img("linux/amd64", "a") + failed, imgs: 1, failures: 1, wantErr: "stdin ended after line 2 without an end record"},
		{name: "truncated, only failures", in: failed, failures: 1, wantErr: "stdin ended after line 1 without an end record"},
		{name: "nothing", in: "", wantErr: "no image records"},
		{name: "wrong kind", in: img("linux/amd64", "a") + `{"v":1,"kind":"job","platform":"linux/arm64"}` + "\n",
			wantErr: "farm-manifest: stdin line 2: a job record; farm-manifest reads image records"},
		{name: "two images one platform", in: img("linux/arm64", "a") + img("linux/arm64/v8", "b"), wantErr: "two images claim linux/arm64"},
		{name: "bad json", in: "{\n", wantErr: "farm-manifest: stdin line 1: invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			imgs, failures, err := Read("farm-manifest", strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if (tc.wantErr == "" || errors.Is(err, record.ErrTruncated)) && (len(imgs) != tc.imgs || len(failures) != tc.failures) {
				t.Fatalf("%d images, %d failures; want %d, %d", len(imgs), len(failures), tc.imgs, tc.failures)
			}
			// Failures read before the problem still pass on.
			if tc.name == "only failures" && len(failures) != 1 {
				t.Errorf("the failures must be returned to pass on")
			}
		})
	}
}

func TestTagOf(t *testing.T) {
	imgs := func(tags ...string) []*record.Image {
		var out []*record.Image
		for _, tag := range tags {
			out = append(out, &record.Image{Tag: tag})
		}
		return out
	}
	if tag, err := TagOf(imgs("r/x:1", "r/x:1")); err != nil || tag != "r/x:1" {
		t.Errorf("same tags: %q %v", tag, err)
	}
	if _, err := TagOf(imgs("r/x:1", "r/x:2")); err == nil || !strings.Contains(err.Error(), "different tags") {
		t.Errorf("different tags: %v", err)
	}
	if _, err := TagOf(imgs("")); err == nil || !strings.Contains(err.Error(), "no tag") {
		t.Errorf("no tag: %v", err)
	}
}

func TestDescribeFailures(t *testing.T) {
	got := DescribeFailures([]*record.Error{
		{Stage: "farm-build", Platform: "arm64", Error: "exit status 1"},
		{Stage: "farm-plan", Error: "no node"},
	})
	if got != "linux/arm64 (exit status 1); farm-plan (no node)" {
		t.Errorf("got %q", got)
	}
}
