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
// image's manifest type (the build's --format: OCI when empty). It is the
// same on every link, measured (docs/transfer.md, bench/p5.sh): zstd
// moves fewer bytes than gzip (41 MiB against 48 for P5's 69 MiB image) and
// costs less CPU to compress, so it is the better choice on a fast link,
// where CPU is the cost, and on a slow one, where bytes are. Only an OCI image can have zstd layers: a push of a
// docker-format image with zstd converts its manifest to OCI and rewrites
// its config, which is another image (and the check after the push would
// refuse it), so such an image gets gzip whatever was asked. A node whose
// podman ignores compressionFormat pushes gzip: still the image built.
func Compression(asked, format string) string {
	if format == manifest.DockerV2Schema2MediaType {
		return CompressionGzip
	}
	if asked == CompressionGzip {
		return CompressionGzip
	}
	return CompressionZstd
}
