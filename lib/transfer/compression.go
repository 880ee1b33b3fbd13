package transfer

import (
	"fmt"

	"github.com/containers/image/v5/manifest"
)

// Layer compressions of the registry transfer (farm-build
// --transfer-compression): how the node compresses each layer it pushes.
const (
	CompressionAuto = "auto" // chosen per image (Compression)
	CompressionGzip = "gzip" // what podman push does by default
	CompressionZstd = "zstd"
)

// CheckCompression validates a --transfer-compression value.
func CheckCompression(c string) error {
	switch c {
	case CompressionAuto, CompressionGzip, CompressionZstd:
		return nil
	}
	return fmt.Errorf("want auto, gzip or zstd, got %q", c)
}

// Compression is how a node compresses the layers of an image it pushes
// to the transfer registry: asked is --transfer-compression, format the
// image's manifest type (the build's --format: OCI when empty). auto is
// gzip, what podman push does: an image pulled back with zstd layers keeps
// them in its manifest in local storage, and `podman save --format
// docker-archive` of it then fails ("zstd compression is not supported for
// docker images"), which a podman build's image never does. zstd moves
// fewer bytes (41 MiB against 48 for P5's 69 MiB image) and costs less CPU,
// so it is there for whoever asks. Only an OCI image can have zstd layers:
// a push of a docker-format image with zstd converts its manifest to OCI
// and rewrites its config, which is another image, so such an image gets
// gzip whatever was asked. A node whose podman ignores compressionFormat
// pushes gzip: still the image built.
func Compression(asked, format string) string {
	if format == manifest.DockerV2Schema2MediaType || asked != CompressionZstd {
		return CompressionGzip
	}
	return CompressionZstd
}
