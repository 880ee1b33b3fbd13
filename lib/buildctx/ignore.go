package buildctx

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containers/storage/pkg/fileutils"
	"github.com/moby/patternmatcher/ignorefile"
)

// readIgnore finds and parses the ignore file the way podman's remote
// client does (pkg/util.ParseDockerignore in v4.9.5), and the node's podman
// service then applies the same file again: .containerignore, else
// .dockerignore, else, next to a Containerfile inside the context,
// <Containerfile>.dockerignore or <Containerfile>.containerignore (the
// former wins when both exist). cfRel is the Containerfile's path in the
// context, "" when it is outside. It returns the normalised patterns, none
// when there is no ignore file.
func readIgnore(root, cfRel string) ([]string, error) {
	candidates := []string{".containerignore", ".dockerignore"}
	if cfRel != "" {
		candidates = append(candidates, cfRel+".dockerignore", cfRel+".containerignore")
	}
	for _, name := range candidates {
		file := filepath.Join(root, filepath.FromSlash(name))
		data, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			// Podman would quietly move on to the next candidate and send
			// what this file was meant to keep back.
			return nil, fmt.Errorf("reading ignore file %s: %w", file, unwrapPath(err))
		}
		patterns, err := parseIgnore(data)
		if err != nil {
			return nil, fmt.Errorf("reading ignore file %s: %w", file, err)
		}
		return patterns, nil
	}
	return nil, nil
}

// parseIgnore reads an ignore file as docker does (moby's ignorefile: a
// BOM dropped, '#' lines skipped, patterns trimmed and cleaned, a leading
// "/" dropped), then rewrites each pattern so that podman's matcher
// (containers/storage fileutils, which the node applies too) reads it as
// docker and users do: that matcher copies + ( ) | { } ^ into a regexp
// unescaped, so "key(1).pem" would match "key1.pem" but not itself, and
// send the file the user listed.
func parseIgnore(data []byte) ([]string, error) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	for i, p := range patterns {
		if rest, negate := strings.CutPrefix(p, "!"); negate {
			patterns[i] = "!" + escapeRegexp(rest)
		} else {
			patterns[i] = escapeRegexp(p)
		}
	}
	return patterns, nil
}

// escapeRegexp backslash-escapes the regexp metacharacters that fileutils
// passes through verbatim; filepath.Match, which fileutils uses to validate
// patterns, reads "\c" as a literal c too.
func escapeRegexp(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			b.WriteByte(c)
			if i+1 < len(p) {
				i++
				b.WriteByte(p[i])
			}
			continue
		case strings.IndexByte("+()|{}", c) >= 0,
			c == '^' && (i == 0 || p[i-1] != '['): // "[^" negates a class
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// matcher decides which paths of the context are left out.
type matcher struct {
	pm *fileutils.PatternMatcher // nil: nothing is excluded
	// forced paths are sent whatever the patterns say: the Containerfile
	// and its own ignore files.
	forced map[string]bool
	// exceptions are the "!" patterns split into path components, for
	// canSkip.
	exceptions [][]string
	// opaque is set when some "!" pattern uses "**", a character class or
	// an escape; canSkip then gives up and the walk visits everything, as
	// podman always does.
	opaque bool
}

func newMatcher(patterns, forced []string) (*matcher, error) {
	m := &matcher{forced: map[string]bool{}}
	for _, f := range forced {
		m.forced[f] = true
	}
	if len(patterns) == 0 {
		return m, nil
	}
	// Podman appends these after the user's patterns so that they win: the
	// builder needs them.
	all := append(patterns[:len(patterns):len(patterns)],
		"!Dockerfile", "!Containerfile", "!.dockerignore", "!.containerignore")
	pm, err := fileutils.NewPatternMatcher(all)
	if err != nil {
		return nil, err
	}
	// fileutils compiles its regexps on first use; make a bad pattern fail
	// here rather than on the first path.
	if _, err := pm.IsMatch("."); err != nil {
		return nil, err
	}
	m.pm = pm
	for _, p := range pm.Patterns() {
		if !p.Exclusion() {
			continue
		}
		s := filepath.ToSlash(p.String())
		if strings.Contains(s, "**") || strings.ContainsAny(s, `[\`) {
			m.opaque = true
			continue
		}
		m.exceptions = append(m.exceptions, strings.Split(s, "/"))
	}
	return m, nil
}

// excluded reports whether the slash-separated path rel is left out.
func (m *matcher) excluded(rel string) (bool, error) {
	if m.pm == nil || m.forced[rel] {
		return false, nil
	}
	// The compiled patterns use ".", which does not match a newline: a
	// newline in a name would let "secrets" miss "secrets/a\nb". No pattern
	// can contain a newline and no name a NUL, so NUL stands in for it.
	return m.pm.IsMatch(strings.ReplaceAll(rel, "\n", "\x00"))
}

// canSkip reports whether nothing below the excluded directory dir can be
// sent, so that the walk need not read it (think node_modules or .git).
// Podman reads every excluded directory because a "!" pattern may bring
// something back; canSkip proves that none can:
//
// Without "**", classes or escapes, a pattern of k components matches
// exactly the paths whose first k components match it one by one
// (fileutils appends "(/.*)?$"). So a pattern with k <= len(dir) matches a
// path below dir exactly when it matches dir, and every exclusion that
// matches dir matches what is below it. What is below dir can only come back
// through a "!" pattern with more components than dir whose leading
// components match dir's, or through a forced path.
func (m *matcher) canSkip(dir string) bool {
	if m.opaque {
		return false
	}
	for f := range m.forced {
		if strings.HasPrefix(f, dir+"/") {
			return false
		}
	}
	parts := strings.Split(dir, "/")
	for _, ex := range m.exceptions {
		if len(ex) > len(parts) && componentsMatch(ex[:len(parts)], parts) {
			return false
		}
	}
	return true
}

func componentsMatch(patterns, names []string) bool {
	for i, p := range patterns {
		ok, err := path.Match(p, names[i])
		if err == nil && !ok {
			return false
		}
		// A malformed component might mean anything: assume it matches.
	}
	return true
}
