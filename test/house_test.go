package test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// House rules that keep the commands thin and the functions readable
// (issue 16): no non-test function over 80 lines, and every
// cmd/*/main.go under 150 lines (flags, then one library call). `make
// lint` runs this test.
const (
	maxFuncLines = 80
	maxMainLines = 150
)

func TestHouseRules(t *testing.T) {
	fset := token.NewFileSet()
	for _, root := range []string{"../lib", "../cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if filepath.Base(path) == "main.go" && strings.HasPrefix(path, "../cmd/") {
				if n := strings.Count(string(src), "\n"); n >= maxMainLines {
					t.Errorf("%s has %d lines, want under %d: move logic into a lib/ package (farm-plan's main is the model)", path, n, maxMainLines)
				}
			}
			f, err := parser.ParseFile(fset, path, src, 0)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok {
					continue
				}
				if n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1; n > maxFuncLines {
					t.Errorf("%s: func %s has %d lines, want at most %d: split it", path, fn.Name.Name, n, maxFuncLines)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
