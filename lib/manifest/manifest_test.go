package manifest

import (
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/record"
)

func TestCheck(t *testing.T) {
	img := func(p, id string) *record.Image { return &record.Image{Platform: p, ID: id} }
	tests := []struct {
		name    string
		imgs    []*record.Image
		wantErr string
	}{
		{"none", nil, "no image records"},
		{"one", []*record.Image{img("linux/amd64", "a")}, ""},
		{"two platforms", []*record.Image{img("linux/amd64", "a"), img("linux/arm64", "b")}, ""},
		{"same platform twice, spelled differently", []*record.Image{img("linux/arm64", "a"), img("linux/arm64/v8", "b")}, "two images claim linux/arm64"},
		{"bad platform", []*record.Image{img("linux/nope", "a")}, "unknown architecture"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.imgs)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
