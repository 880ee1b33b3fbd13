//go:build lab

package lab

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docBlock is a fenced code block of a markdown file.
type docBlock struct {
	line   int // of the opening fence, 1-based
	info   string
	script string
}

// runnable reports whether a block is marked to be run by TestDocs:
// ```sh runnable (or bash).
func (b docBlock) runnable() bool {
	f := strings.Fields(b.info)
	return len(f) >= 2 && (f[0] == "sh" || f[0] == "bash") && contains(f[1:], "runnable")
}

var fence = regexp.MustCompile("^( *)(```+|~~~+)\\s*(.*)$")

// docBlocks returns the fenced code blocks of a markdown file, fences
// indented (in a list item) or not.
func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *docBlock
	var indent, marker string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur == nil {
			if m := fence.FindStringSubmatch(line); m != nil {
				cur = &docBlock{line: n, info: m[3]}
				indent, marker = m[1], m[2]
			}
			continue
		}
		if m := fence.FindStringSubmatch(line); m != nil && strings.HasPrefix(m[2], marker) && m[3] == "" {
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		cur.script += strings.TrimPrefix(line, indent) + "\n"
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", path, cur.line)
	}
	return blocks
}

// placeholders that cannot run on the lab: a block with one is not runnable.
var placeholders = regexp.MustCompile(`\bIMG\b|example\.com|quay\.io|arm-box|x86-box|myfarm|/run/user/`)

// TestDocs runs every block marked runnable in README.md and docs/*.md on
// the lab: with bash -euo pipefail, bin/ first on PATH, in a temporary
// directory holding a copy of examples/ and scripts/examples/. The blocks of
// one file run in order in one directory, so a block may use what an
// earlier one wrote (plan.jsonl). The first failing block fails its file,
// naming the file and line of the block.
func TestDocs(t *testing.T) {
	root := repo(t)
	if _, err := os.Stat(filepath.Join(root, "bin", "farm-build")); err != nil {
		t.Fatalf("no bin/farm-build: run `make build` first")
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	total := 0
	for _, path := range files {
		rel, _ := filepath.Rel(root, path)
		var blocks []docBlock
		for _, b := range docBlocks(t, path) {
			if !b.runnable() {
				continue
			}
			if m := placeholders.FindString(b.script); m != "" {
				t.Errorf("%s:%d: a runnable block must use the lab (farm lab, 127.0.0.1:5000, examples/hello), not %q", rel, b.line, m)
				continue
			}
			blocks = append(blocks, b)
		}
		total += len(blocks)
		if len(blocks) == 0 {
			continue
		}
		t.Run(rel, func(t *testing.T) {
			work := t.TempDir()
			for _, d := range []string{"examples", "scripts/examples"} {
				os.MkdirAll(filepath.Dir(filepath.Join(work, d)), 0o755)
				if out, err := exec.Command("cp", "-a", filepath.Join(root, d), filepath.Join(work, d)).CombinedOutput(); err != nil {
					t.Fatalf("copying %s: %v\n%s", d, err, out)
				}
			}
			for _, b := range blocks {
				start := time.Now()
				stdout, stderr, err := runBlock(root, work, b.script)
				t.Logf("%s:%d (%s):\n%s", rel, b.line, time.Since(start).Round(time.Millisecond), b.script)
				if err != nil {
					t.Fatalf("%s:%d: the block failed: %v\n%s\nstdout:\n%s\nstderr:\n%s", rel, b.line, err, b.script, stdout, tail(stderr, 60))
				}
			}
		})
	}
	// The pages promise their lab commands run; a lost "runnable" mark
	// would quietly stop checking them.
	if total < 20 {
		t.Errorf("only %d runnable blocks in README.md and docs/*.md; expected at least 20", total)
	}
}

func runBlock(root, dir, script string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = append([]string{"..."}, l[len(l)-lines:]...)
	}
	return strings.Join(l, "\n")
}
