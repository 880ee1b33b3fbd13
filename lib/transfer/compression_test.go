package transfer

import (
	"testing"

	"github.com/containers/image/v5/manifest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestCompression(t *testing.T) {
	for _, c := range []struct {
		asked, format, want string
	}{
		// auto is gzip: an image with zstd layers in local storage cannot
		// be saved as a docker-archive.
		{CompressionAuto, "", CompressionGzip},
		{CompressionAuto, imgspecv1.MediaTypeImageManifest, CompressionGzip},
		{CompressionAuto, manifest.DockerV2Schema2MediaType, CompressionGzip},
		{CompressionZstd, imgspecv1.MediaTypeImageManifest, CompressionZstd},
		// zstd would rewrite a docker-format image's config: another image.
		{CompressionZstd, manifest.DockerV2Schema2MediaType, CompressionGzip},
		{CompressionGzip, "", CompressionGzip},
		{CompressionGzip, manifest.DockerV2Schema2MediaType, CompressionGzip},
	} {
		if got := Compression(c.asked, c.format); got != c.want {
			t.Errorf("Compression(%q, %q) = %q, want %q", c.asked, c.format, got, c.want)
		}
	}
}

func TestCheckCompression(t *testing.T) {
	for _, c := range []string{"auto", "gzip", "zstd"} {
		if err := CheckCompression(c); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	for _, c := range []string{"", "zstd:chunked", "none", "GZIP"} {
		if err := CheckCompression(c); err == nil {
			t.Errorf("%q: want an error", c)
		}
	}
}
