// Package cachedir names the directories farm keeps between runs on this
// machine, one per purpose under the user's cache directory, so that every
// stage puts them in the same place on Linux, macOS and Windows.
package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// For is farm's cache directory for purpose: $XDG_CACHE_HOME/farm/PURPOSE,
// else ~/.cache/farm/PURPOSE (os.UserCacheDir's place on macOS and
// Windows). It is not created.
func For(purpose string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for farm's %s: %w", purpose, err)
	}
	return filepath.Join(dir, "farm", purpose), nil
}
