// Package buildctx turns a build context directory into the gzip'd tar that
// podman's build API (POST /build) takes as its body. farm-build walks the
// context once and sends the same bytes to every node, so the archive is
// produced once, kept (see Context) and read concurrently by every upload.
//
// What is sent follows podman v4.9.5's remote client (pkg/bindings/images:
// nTar and util.ParseDockerignore) so that a context behaves on a farm as it
// does with `podman --remote build`. Each deliberate difference keeps files
// the user asked to ignore from leaving the machine, says what was left out,
// or makes the archive reproducible. As in podman, the Containerfile and the
// ignore file are always sent, multiply linked files go as hard links to
// their first name, symlinks are sent as symlinks, never followed, whatever
// they point to (absolute, or out of the context with ../..: they resolve
// inside the image the builder makes, not on this machine), and a file that
// cannot be read fails the archive unless it is ignored: an image quietly
// missing a file is worse than a failed build. The differences:
//
//   - ignore patterns are normalised like docker does before they reach
//     podman's matcher (a leading "/" is dropped, regexp metacharacters are
//     literal); podman would send "/secret.env" and "key(1).pem" even when
//     they are listed;
//   - an ignore file that exists but cannot be read is an error, where podman
//     silently falls back to the next candidate;
//   - sockets, FIFOs and devices are left out with a warning where podman
//     leaves them out silently;
//   - a file that grows while it is read is sent at the size it had when
//     its header was written, with a warning, as GNU tar does ("file
//     changed as we read it"); one that shrinks fails the archive (podman
//     would fail with tar's "write too short" error);
//   - an ignored directory that cannot be read is a warning, not an error
//     (podman reads every ignored directory in case a "!" pattern brings
//     something back; here a directory is not read at all when no pattern
//     can, which spares walking node_modules or .git);
//   - tar headers carry no user or group names, mtimes are truncated to the
//     second and entries come in sorted order, so an unchanged context gives
//     the same bytes and the same Digest;
//   - a Containerfile outside the context is stored under a relative name
//     (Stats.ContainerfileInTar) instead of its absolute client path.
package buildctx

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/pgzip"
)

// DefaultLevel is the compression level used when Options.Level is 0.
//
// Build compresses once, then the same bytes go to every node through this
// machine's uplink (LAN or SSH), so a level pays off when the bytes it saves
// on all uploads take longer to send than the extra compression. Measured
// on the 2-core reference machine with bench/context on a real mixed tree
// (GOROOT: 245 MB of tar, 15k files, text and binaries), archive then
// upload to 4 nodes:
//
//	level  size   archive  @100 Mbit/s  @1 Gbit/s  @10 Gbit/s
//	1      32.1%  0.64 s   25.8 s       3.15 s     0.89 s
//	2      31.1%  0.64 s   25.0 s       3.07 s     0.88 s
//	3      30.3%  0.73 s   24.5 s       3.10 s     0.97 s
//	6      28.1%  1.03 s   23.1 s       3.23 s     1.25 s
//	9      27.3%  7.24 s   28.6 s       9.38 s
//
// klauspost's level 2 is as fast as BestSpeed (BenchmarkCompress: 946
// against 1028 MB/s on 200 MB of generated source and blobs; podman's
// source tree: 46 against 45 ms) and 3-4% smaller on real trees: it was
// never slower end to end. Level 6 only wins on links slower than a few
// hundred Mbit/s, where Options.Level can ask for it.
const DefaultLevel = 2

// maxInMemory bounds how much of the compressed archive Build keeps on the
// Go heap; beyond it the archive moves to an unlinked temporary file (which
// the page cache serves as fast while memory allows). Contexts are usually
// a few MB compressed; 512 MiB leaves a laptop room for the uploads.
const maxInMemory = 512 << 20

// Options says what to archive.
type Options struct {
	// Dir is the context directory.
	Dir string
	// Containerfile is the path given with -f, relative to the working
	// directory (or, failing that, to Dir as podman allows). Empty means
	// Dir/Containerfile, else Dir/Dockerfile. A Containerfile outside Dir (or
	// one that is a symlink) is added to the archive under a name of its own,
	// reported in Stats.ContainerfileInTar.
	Containerfile string
	// Level is the gzip level: 0 selects DefaultLevel, otherwise
	// pgzip.BestSpeed..pgzip.BestCompression, pgzip.DefaultCompression or
	// pgzip.HuffmanOnly. (Storing without compression is not offered: the
	// fast levels compress at about 1 GB/s on two cores, faster than the
	// links farm uses.)
	Level int
	// Warn receives a line for each entry left out of the archive that the
	// ignore files did not ask to leave out (sockets, FIFOs, devices,
	// excluded directories that could not be read) and for each file that
	// grew while it was read. Nil discards them.
	Warn func(msg string)
	// IgnoreFile, when set, is read instead of .containerignore and
	// .dockerignore (podman build --ignorefile).
	IgnoreFile string
	// Extra files from this machine go at the archive's root under their
	// Name: podman-remote sends --secret files this way.
	Extra []Extra
}

// Extra is a file added to the archive from outside the context.
type Extra struct {
	Name string // at the archive's root
	Path string
	What string // what it is, in errors: "secret id=x"
}

// Stats describes an archive that was written.
type Stats struct {
	// ContainerfileInTar is the slash-separated path of the Containerfile
	// inside the archive: the value for the build's "dockerfile" parameter.
	ContainerfileInTar string
	// Files counts regular files (including hard links) in the archive.
	Files int
	// RawBytes is the size of the uncompressed tar stream.
	RawBytes int64
}

// Context is a compressed build context ready to be sent to any number of
// nodes at once. Call Close once every upload is done.
type Context struct {
	Stats
	// Digest is "sha256:" and the hex digest of the compressed bytes.
	Digest string

	data          io.ReaderAt
	size          int64
	file          *os.File // non-nil once the archive outgrew maxInMemory
	removeOnClose string
}

// Size returns the size of the compressed archive in bytes.
func (c *Context) Size() int64 { return c.size }

// NewReader returns an independent reader over the compressed archive. Any
// number of readers may be used concurrently; each one is seekable, so an
// HTTP client can rewind it to retry a request.
func (c *Context) NewReader() *io.SectionReader {
	return io.NewSectionReader(c.data, 0, c.size)
}

// Close releases the temporary file behind a large archive. Readers must not
// be used after Close.
func (c *Context) Close() error {
	if c.file == nil {
		return nil
	}
	f := c.file
	c.file = nil
	err := f.Close()
	if c.removeOnClose != "" {
		if rerr := os.Remove(c.removeOnClose); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("releasing build context spill file %s: %w", f.Name(), err)
	}
	return nil
}

// hooks are the seams tests use; production code always runs with
// defaultHooks.
type hooks struct {
	// open opens a file or directory of the context without following a
	// final symlink.
	open func(name string) (*os.File, error)
	// maxInMemory is the spill threshold of Build.
	maxInMemory int64
	// compress wraps the tar stream; nil means pgzip at the chosen level.
	compress func(w io.Writer) (io.WriteCloser, error)
	// statted, when set, runs after a file's header size is taken and
	// before its bytes are read: tests change the file there.
	statted func(abs string)
	// noSkip makes the walk descend into every excluded directory, as
	// podman does; used to check that skipping never changes the result.
	noSkip bool
}

func defaultHooks() hooks {
	return hooks{open: openNoFollow, maxInMemory: maxInMemory}
}

// Build archives the context described by opts in memory (spilling to a
// temporary file past 512 MiB compressed) and returns it with its digest.
// The walk stops as soon as ctx is done.
func Build(ctx context.Context, opts Options) (*Context, error) {
	return build(ctx, opts, defaultHooks())
}

func build(ctx context.Context, opts Options, h hooks) (*Context, error) {
	store := &spillStore{limit: h.maxInMemory}
	digest := sha256.New()
	st, err := writeTo(ctx, io.MultiWriter(store, digest), opts, h)
	if err != nil {
		store.discard()
		return nil, err
	}
	return &Context{
		Stats:  st,
		Digest: "sha256:" + hex.EncodeToString(digest.Sum(nil)),
		data:   store.readerAt(),
		size:   store.size,
		file:   store.file,

		removeOnClose: store.removeOnClose,
	}, nil
}

// WriteTo writes the gzip'd tar of the context described by opts to w,
// streaming: nothing but the current file's buffer is held. The walk stops
// as soon as ctx is done or w fails. On error, what was written to w is
// not a complete archive.
func WriteTo(ctx context.Context, w io.Writer, opts Options) (Stats, error) {
	return writeTo(ctx, w, opts, defaultHooks())
}

func writeTo(ctx context.Context, w io.Writer, opts Options, h hooks) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	compress := h.compress
	if compress == nil {
		level, err := compressionLevel(opts.Level)
		if err != nil {
			return Stats{}, err
		}
		blocks := pgzipBlocks()
		compress = func(w io.Writer) (io.WriteCloser, error) { return newPgzip(w, level, blocks) }
	}
	p, err := prepare(opts)
	if err != nil {
		return Stats{}, err
	}

	sink := &stickyWriter{w: w}
	zw, err := compress(sink)
	if err != nil {
		return Stats{}, err
	}
	raw := &countingWriter{w: zw}
	tw := tar.NewWriter(raw)
	wk := &walker{
		ctx:     ctx,
		root:    p.root,
		tw:      tw,
		match:   p.match,
		noSkip:  h.noSkip,
		open:    h.open,
		statted: h.statted,
		sink:    sink,
		warn:    opts.Warn,
		seen:    map[fileID]string{},
		buf:     make([]byte, 256<<10),
	}
	if wk.warn == nil {
		wk.warn = func(string) {}
	}
	err = wk.walkDir(p.root, "", false)
	if err == nil && p.cf.external != "" {
		err = wk.external(p.cf.external, p.cf.inTar, "containerfile")
	}
	for _, x := range opts.Extra {
		if err == nil {
			err = wk.external(x.Path, x.Name, x.What)
		}
	}
	if err == nil {
		err = tw.Close()
	}
	// Close the compressor even after a failure: pgzip's goroutines only
	// end once it is closed.
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if serr := sink.failure(); serr != nil {
		// The destination's error explains any tar or gzip error it caused.
		err = serr
	}
	if err != nil {
		return Stats{}, err
	}
	return Stats{
		ContainerfileInTar: p.cf.inTar,
		Files:              wk.files,
		RawBytes:           raw.n,
	}, nil
}

func compressionLevel(level int) (int, error) {
	switch {
	case level == 0:
		return DefaultLevel, nil
	case level == pgzip.DefaultCompression, level == pgzip.HuffmanOnly,
		level >= pgzip.BestSpeed && level <= pgzip.BestCompression:
		return level, nil
	}
	return 0, fmt.Errorf("invalid gzip level %d: want 0 (default), -1, -2 or 1..9", level)
}

// pgzipBlocks is how many blocks newPgzip lets compress at once: two per
// CPU, so that the walk finds a free one while the others compress.
func pgzipBlocks() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// newPgzip returns a pgzip writer compressing up to blocks 1 MiB blocks at
// once. pgzip's default, one block per CPU, starves on a 2-core machine:
// the walk, which fills the blocks, waits for a free one whenever a
// compressor is late to be scheduled. On 100 MB at BestSpeed, 2 blocks kept
// 1.0-1.4 cores busy and stalled for seconds when other processes were
// busy; 4 blocks kept 1.9 cores busy; 8 gained nothing. Each block costs
// about 2 MiB of buffers. Block boundaries, and so the bytes, do not depend
// on blocks.
func newPgzip(w io.Writer, level, blocks int) (io.WriteCloser, error) {
	zw, err := pgzip.NewWriterLevel(w, level)
	if err != nil {
		return nil, err
	}
	if err := zw.SetConcurrency(1<<20, blocks); err != nil {
		return nil, err
	}
	// pgzip would store the zero time.Time as a garbage timestamp; 0 means
	// "no timestamp" in gzip and keeps the bytes reproducible.
	zw.ModTime = time.Unix(0, 0)
	return zw, nil
}

// stickyWriter records the destination's first error and then swallows
// writes. pgzip writes from its own goroutine and, once that write fails,
// never lets its goroutines finish; with the error kept here pgzip always
// completes and the walk polls failure() to stop early.
type stickyWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return len(p), nil
	}
	n, err := s.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = fmt.Errorf("writing build context: %w", err)
	}
	return len(p), nil
}

func (s *stickyWriter) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
