// Package transfer brings an image built on a node into local podman
// storage.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/storage/pkg/stringid"
	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/proxy"
)

// Archive formats for the pull-back. docker-archive is the default: it
// carries layers uncompressed, so neither the node nor this machine spends
// CPU on gzip, which on a LAN or a loopback lab costs more than the bytes it
// saves (bench/RESULTS.md). oci-archive gzips every layer on the node: the
// better choice over a slow link.
const (
	DockerArchive = "docker-archive"
	OCIArchive    = "oci-archive"
)

// Archive streams image id from a node into local storage through a pipe: no temporary copy
// on this machine. It returns the archive's size in bytes. A failure part
// way leaves no image behind locally: podman load commits an image only
// after reading the whole archive. watch is given how to count the bytes
// so far.
func Archive(ctx context.Context, node, local *podman.Client, id, format string, watch func(func() int64)) (int64, error) {
	pr, pw := io.Pipe()
	var n atomic.Int64
	watch(n.Load)
	exportErr := make(chan error, 1)
	go func() {
		err := images.Export(node.Bind(ctx), []string{id}, proxy.Counter{W: pw, N: &n}, &images.ExportOptions{Format: &format})
		pw.CloseWithError(errOrEOF(err))
		exportErr <- err
	}()
	_, loadErr := images.Load(local.Bind(ctx), pr)
	pr.CloseWithError(errLoadEnded)
	err := <-exportErr
	// A load that fails first (the local service died or restarted) closes
	// the pipe under the export: the export's error is then only an echo,
	// and blaming the node would make farm-build fail over for nothing.
	if loadErr != nil && (err == nil || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, errLoadEnded)) {
		return n.Load(), fault.AsLocal(fmt.Errorf("loading %s into local storage: %w", stringid.TruncateID(id), loadErr))
	}
	if err != nil {
		return n.Load(), fmt.Errorf("exporting %s from the node as %s: %w", stringid.TruncateID(id), format, err)
	}
	if loadErr != nil {
		return n.Load(), fault.AsLocal(fmt.Errorf("loading %s into local storage: %w", stringid.TruncateID(id), loadErr))
	}
	return n.Load(), nil
}

var errLoadEnded = errors.New("load ended")

func errOrEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}
