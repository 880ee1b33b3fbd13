//go:build unix

package buildctx

import (
	"io/fs"
	"os"
	"syscall"
)

// openNoFollow opens an entry the walk found. O_NOFOLLOW makes sure that an
// entry swapped for a symlink since it was listed is not followed, and
// O_NONBLOCK that one swapped for a FIFO does not hang the walk.
func openNoFollow(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// hardLinkID identifies a file with more than one name, so that later names
// are sent as hard links to the first, as podman does.
func hardLinkID(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink <= 1 {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}
