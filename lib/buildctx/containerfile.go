package buildctx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// prepared is what the walk needs, worked out before it starts.
type prepared struct {
	root  string // the context directory, absolute, symlinks resolved
	cf    containerfile
	match *matcher
}

func prepare(opts Options) (*prepared, error) {
	if opts.Dir == "" {
		return nil, errors.New("no build context directory given")
	}
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", opts.Dir, err)
	}
	// Walk the real directory, as podman does, so that "inside the context"
	// means the same thing for the directory and for the symlinks in it.
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", abs, unwrapPath(err))
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", root, unwrapPath(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", root)
	}
	cf, err := findContainerfile(root, opts.Containerfile)
	if err != nil {
		return nil, err
	}
	var patterns []string
	if opts.IgnoreFile != "" {
		data, rerr := os.ReadFile(opts.IgnoreFile)
		if rerr != nil {
			return nil, fmt.Errorf("--ignorefile: %w", rerr)
		}
		patterns, err = parseIgnore(data)
	} else {
		patterns, err = readIgnore(root, cf.inContext)
	}
	if err != nil {
		return nil, err
	}
	var forced []string
	if cf.inContext != "" {
		// Podman sends these whatever the ignore file says (its
		// "dontexcludes"); the builder reads them.
		forced = []string{cf.inContext, cf.inContext + ".dockerignore", cf.inContext + ".containerignore"}
	}
	m, err := newMatcher(patterns, forced)
	if err != nil {
		return nil, fmt.Errorf("build context %s: bad ignore pattern: %w", root, err)
	}
	return &prepared{root: root, cf: cf, match: m}, nil
}

// containerfile says where the Containerfile comes from and where it goes.
type containerfile struct {
	// inContext is its slash-separated path in the context when it lies
	// there, "" when it is outside.
	inContext string
	// external is the file to add under inTar after the walk: a
	// Containerfile outside the context, or one that is a symlink (which
	// the walk sends, if at all, as a link the node could not follow to
	// the file the user named).
	external string
	// inTar is its path in the archive.
	inTar string
}

func findContainerfile(root, given string) (containerfile, error) {
	file, err := locateContainerfile(root, given)
	if err != nil {
		return containerfile{}, err
	}
	// Resolve the directory's symlinks, not the file's: like podman, a
	// Containerfile is in the context when its directory is.
	dir, err := filepath.EvalSymlinks(filepath.Dir(file))
	if err != nil {
		return containerfile{}, fmt.Errorf("containerfile %s: %w", file, unwrapPath(err))
	}
	file = filepath.Join(dir, filepath.Base(file))
	fi, err := os.Lstat(file)
	if err != nil {
		return containerfile{}, fmt.Errorf("containerfile %s: %w", file, unwrapPath(err))
	}
	var cf containerfile
	if rel, ok := within(root, file); ok && rel != "." {
		cf.inContext = filepath.ToSlash(rel)
		if fi.Mode().IsRegular() {
			cf.inTar = cf.inContext
			return cf, nil
		}
	}
	// The user named this file: following a symlink to it is intended.
	fi, err = os.Stat(file)
	if err != nil {
		return containerfile{}, fmt.Errorf("containerfile %s: %w", file, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return containerfile{}, fmt.Errorf("containerfile %s is not a regular file", file)
	}
	cf.external = file
	cf.inTar, err = freeName(root, filepath.Base(file))
	return cf, err
}

// locateContainerfile finds the file the user means, as podman does: -f is
// relative to the working directory or, failing that, to the context;
// without -f it is the context's Containerfile, else its Dockerfile.
func locateContainerfile(root, given string) (string, error) {
	if given == "" {
		for _, name := range []string{"Containerfile", "Dockerfile"} {
			file := filepath.Join(root, name)
			_, err := os.Lstat(file)
			if err == nil {
				return file, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("looking for %s: %w", file, unwrapPath(err))
			}
		}
		return "", fmt.Errorf("no Containerfile or Dockerfile in build context %s; name one with -f PATH", root)
	}
	file, err := filepath.Abs(given)
	if err != nil {
		return "", fmt.Errorf("containerfile %s: %w", given, err)
	}
	if _, err := os.Lstat(file); errors.Is(err, fs.ErrNotExist) && !filepath.IsAbs(given) {
		if alt := filepath.Join(root, given); exists(alt) {
			return alt, nil
		}
	}
	return file, nil
}

// freeName picks the archive name of a Containerfile added from outside the
// context: one no entry of the context has, keeping the file's name so that
// a suffix the builder heeds (".in" is preprocessed) survives.
func freeName(root, base string) (string, error) {
	name := ".farm-" + base
	for i := 2; i < 100; i++ {
		if !exists(filepath.Join(root, name)) {
			return name, nil
		}
		name = fmt.Sprintf(".farm%d-%s", i, base)
	}
	return "", fmt.Errorf("build context %s: no free name to add containerfile %s under", root, base)
}

func exists(file string) bool {
	_, err := os.Lstat(file)
	return !errors.Is(err, fs.ErrNotExist)
}

// within returns file's path relative to root and whether that stays in
// root. Both must be clean absolute paths.
func within(root, file string) (string, bool) {
	rel, err := filepath.Rel(root, file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}
