package cachedir

import (
	"path/filepath"
	"strings"
	"testing"
)

// XDG_CACHE_HOME and HOME are what os.UserCacheDir reads on Linux.
func TestFor(t *testing.T) {
	for _, tc := range []struct {
		name, xdg, home, want, wantErr string
	}{
		{"XDG_CACHE_HOME", "/x/cache", "/home/u", "/x/cache/farm/nodes", ""},
		{"home", "", "/home/u", "/home/u/.cache/farm/nodes", ""},
		{"neither", "", "", "", "no cache directory for farm's nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", tc.xdg)
			t.Setenv("HOME", tc.home)
			got, err := For("nodes")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != filepath.FromSlash(tc.want) {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
