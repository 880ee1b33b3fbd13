package platform

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that the canonical form is a
// fixed point: stages re-parse the platform strings earlier stages wrote, and
// a string that changed on the way would no longer match.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"arm64", "linux/arm64", "linux/arm64/v8", "aarch64", "linux/aarch64",
		"amd64", "x86_64", "linux/amd64", "linux/amd64/v3",
		"arm/v7", "linux/arm", "armhf", "armel", "linux/arm/v7", "arm/v6", "linux/arm/8",
		"ppc64le", "s390x", "riscv64", "i386", "windows/amd64", "macos/arm64",
		"", " ", "foo", "linux/foo", "amd46", "a/b/c/d", "linux/arm64/v8/x", "*",
		"linux/", "//", "Linux/ARM64/V8", "arm64,amd64",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if p != (Platform{}) {
				t.Fatalf("Parse(%q) = %+v with error %v, want the zero Platform", s, p, err)
			}
			return
		}
		if p.OS == "" || p.Arch == "" {
			t.Fatalf("Parse(%q) = %+v: OS or architecture empty", s, p)
		}
		c := p.String()
		if strings.ToLower(c) != c || strings.TrimSpace(c) != c {
			t.Fatalf("Parse(%q).String() = %q is not lower case and trimmed", s, c)
		}
		again, err := Parse(c)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, but Parse(%q): %v", s, c, c, err)
		}
		if again != p {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v", s, p, c, again)
		}
	})
}
