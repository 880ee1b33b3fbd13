package buildctx

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// fileID identifies a file across its hard links.
type fileID struct{ dev, ino uint64 }

// walker writes the context's entries to the tar stream, depth first in
// byte order of names so that the same tree always gives the same stream.
type walker struct {
	ctx     context.Context
	root    string
	tw      *tar.Writer
	match   *matcher
	noSkip  bool
	open    func(name string) (*os.File, error)
	statted func(abs string)
	sink    *stickyWriter
	warn    func(msg string)
	seen    map[fileID]string // first archive name of each multiply linked file
	buf     []byte
	files   int
}

// stopped returns why the walk must end early, if it must.
func (w *walker) stopped() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	return w.sink.failure()
}

// walkDir sends what is below the directory abs (rel in the archive, "" for
// the root). excluded says the directory itself is left out: the walk only
// looks below it for what "!" patterns bring back.
func (w *walker) walkDir(abs, rel string, excluded bool) error {
	f, err := w.open(abs)
	if err != nil {
		return w.unreadableDir(abs, excluded, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("reading directory %s: %w", abs, unwrapPath(err))
	}
	if !fi.IsDir() {
		f.Close()
		return fmt.Errorf("%s changed while the build context was read: no longer a directory", abs)
	}
	if rel != "" && !excluded {
		if err := w.writeHeader(header(rel+"/", tar.TypeDir, fi), abs); err != nil {
			f.Close()
			return err
		}
	}
	entries, err := f.ReadDir(-1)
	// Close before descending: depth should not cost file descriptors.
	f.Close()
	if err != nil {
		return w.unreadableDir(abs, excluded, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })

	for _, e := range entries {
		if err := w.stopped(); err != nil {
			return err
		}
		name := e.Name()
		childAbs := filepath.Join(abs, name)
		childRel := name
		if rel != "" {
			childRel = rel + "/" + name
		}
		childExcluded, err := w.match.excluded(childRel)
		if err != nil {
			return fmt.Errorf("matching %s against the ignore patterns: %w", childAbs, err)
		}
		t := e.Type()
		switch {
		case t.IsDir():
			if childExcluded && !w.noSkip && w.match.canSkip(childRel) {
				continue
			}
			err = w.walkDir(childAbs, childRel, childExcluded)
		case childExcluded:
			// Checked before the type: an ignored socket is no news and an
			// ignored unreadable file no error.
			continue
		case t.IsRegular():
			err = w.file(childAbs, childRel)
		case t&fs.ModeSymlink != 0:
			err = w.symlink(childAbs, childRel)
		default:
			// podman's remote client leaves them out silently; a
			// warning says so.
			w.warn(fmt.Sprintf("not sending %s: a %s cannot be part of a build context (podman leaves it out too)", childAbs, kind(t)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unreadableDir fails the walk unless the directory is excluded anyway; then
// only what a "!" pattern might have brought back from it is lost, and the
// user hears about it.
func (w *walker) unreadableDir(abs string, excluded bool, err error) error {
	if excluded && w.stopped() == nil {
		w.warn(fmt.Sprintf("not looking into ignored directory %s for files the ignore file's \"!\" patterns bring back: %v", abs, unwrapPath(err)))
		return nil
	}
	return readErr("reading directory", abs, err)
}

func (w *walker) file(abs, rel string) error {
	f, err := w.open(abs)
	if err != nil {
		return readErr("reading", abs, err)
	}
	defer f.Close()
	// The header describes the file as opened, not as listed: what is sent
	// is what was read.
	fi, err := f.Stat()
	if err != nil {
		return readErr("reading", abs, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s changed while the build context was read: no longer a regular file", abs)
	}
	id, linked := hardLinkID(fi)
	if first, ok := w.seen[id]; linked && ok {
		hdr := header(rel, tar.TypeLink, fi)
		hdr.Linkname = first
		if err := w.writeHeader(hdr, abs); err != nil {
			return err
		}
		w.files++
		return nil
	}
	hdr := header(rel, tar.TypeReg, fi)
	hdr.Size = fi.Size()
	if w.statted != nil {
		w.statted(abs)
	}
	if err := w.copyFile(hdr, f, abs); err != nil {
		return err
	}
	if linked {
		w.seen[id] = rel
	}
	return nil
}

// external adds a file from outside the context (the Containerfile given
// with -f, a --secret's file) under name; what names it in errors.
func (w *walker) external(file, name, what string) error {
	if err := w.stopped(); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return readErr("reading "+what, file, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return readErr("reading "+what, file, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file", what, file)
	}
	hdr := header(name, tar.TypeReg, fi)
	hdr.Size = fi.Size()
	return w.copyFile(hdr, f, file)
}

func (w *walker) copyFile(hdr *tar.Header, f *os.File, abs string) error {
	if err := w.writeHeader(hdr, abs); err != nil {
		return err
	}
	// Wrapped so that io.CopyBuffer uses w.buf: tar.Writer's ReadFrom and
	// os.File's WriteTo would each allocate their own buffer per file.
	src := io.LimitReader(stopReader{f, w}, hdr.Size)
	n, err := io.CopyBuffer(writerOnly{w.tw}, src, w.buf)
	if err != nil {
		if serr := w.stopped(); serr != nil {
			return serr
		}
		return readErr("reading", abs, err)
	}
	if n < hdr.Size {
		return fmt.Errorf("%s shrank from %d to %d bytes while the build context was read", abs, hdr.Size, n)
	}
	// As GNU tar: a file that grew is sent at the size it had when its
	// header was written, with a warning.
	if fi, err := f.Stat(); err == nil && fi.Size() > hdr.Size {
		w.warn(fmt.Sprintf("%s: file changed as we read it (grew from %d to %d bytes); sent its first %d bytes", abs, hdr.Size, fi.Size(), hdr.Size))
	}
	w.files++
	return nil
}

func (w *walker) symlink(abs, rel string) error {
	fi, err := os.Lstat(abs)
	if err != nil {
		return readErr("reading symlink", abs, err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s changed while the build context was read: no longer a symlink", abs)
	}
	target, err := os.Readlink(abs)
	if err != nil {
		return readErr("reading symlink", abs, err)
	}
	hdr := header(rel, tar.TypeSymlink, fi)
	hdr.Linkname = target
	return w.writeHeader(hdr, abs)
}

func (w *walker) writeHeader(hdr *tar.Header, abs string) error {
	if err := w.tw.WriteHeader(hdr); err != nil {
		if serr := w.stopped(); serr != nil {
			return serr
		}
		return fmt.Errorf("archiving %s: %w", abs, err)
	}
	return nil
}

// header makes a reproducible tar header: owner root with no names (the
// node's builder owns what it extracts anyway, and names would leak this
// machine's accounts), no access or change times, mtime to the second as
// docker sends it.
func header(name string, typ byte, fi fs.FileInfo) *tar.Header {
	m := fi.Mode()
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		ModTime:  fi.ModTime().Truncate(time.Second),
		// PAX only where USTAR cannot say it: long or non-ASCII names.
		Format: tar.FormatPAX,
	}
}

func kind(t fs.FileMode) string {
	switch {
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}

// readErr names the file and, when it is a matter of permissions, the way
// out. An unreadable file is an error, not a warning, as with podman: an
// image quietly missing a file is worse than a failed build.
func readErr(action, file string, err error) error {
	err = unwrapPath(err)
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s %s: %w (make it readable or list it in .containerignore)", action, file, err)
	}
	return fmt.Errorf("%s %s: %w", action, file, err)
}

// unwrapPath drops a *fs.PathError's path so that messages which name the
// file themselves do not name it twice.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// stopReader ends a copy as soon as the walk must stop.
type stopReader struct {
	r io.Reader
	w *walker
}

func (s stopReader) Read(p []byte) (int, error) {
	if err := s.w.stopped(); err != nil {
		return 0, err
	}
	return s.r.Read(p)
}

type writerOnly struct{ io.Writer }

// countingWriter counts the uncompressed tar stream.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
