//go:build !unix

package buildctx

import (
	"io/fs"
	"os"
)

func openNoFollow(name string) (*os.File, error) {
	return os.Open(name)
}

func hardLinkID(fs.FileInfo) (fileID, bool) {
	return fileID{}, false
}
