// Package platform turns the many spellings of a target platform ("arm64",
// "linux/arm64", "linux/arm64/v8", "arm/v7") into one canonical value, so that
// every stage compares platforms the same way. podman farm cannot match
// linux/arm64 against a node reporting linux/arm64/v8 (podman#27586); farm
// can, because everything goes through Parse.
package platform

import (
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/containerd/platforms"
)

// Platform is a normalised os/arch/variant triple. The zero value is invalid.
type Platform struct {
	OS      string
	Arch    string
	Variant string
}

// Known operating systems and architectures: the OCI image-spec values. An
// unknown word is almost always a typo ("amd46"), and sending it to a node
// would only fail minutes later with a less helpful message.
var (
	knownOS = map[string]bool{
		"aix": true, "android": true, "darwin": true, "dragonfly": true, "freebsd": true,
		"illumos": true, "ios": true, "js": true, "linux": true, "netbsd": true,
		"openbsd": true, "plan9": true, "solaris": true, "windows": true, "zos": true,
	}
	knownArch = map[string]bool{
		"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true,
		"mips": true, "mipsle": true, "mips64": true, "mips64le": true,
		"ppc64": true, "ppc64le": true, "riscv64": true, "s390x": true, "wasm": true,
	}
)

// Parse accepts "arch", "arch/variant", "os/arch" and "os/arch/variant" in
// any of the spellings podman and the OCI spec accept (aarch64, x86_64,
// armhf, ...) and returns the canonical platform: the OS defaults to linux,
// arm64's default variant v8 is dropped, arm's default variant v7 is kept.
func Parse(s string) (Platform, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return Platform{}, fmt.Errorf("empty platform")
	}
	parts := strings.Split(raw, "/")
	if len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	// containerd's Parse defaults a missing OS to the client's GOOS; a farm
	// builds Linux images whatever the client runs, so say linux explicitly.
	if len(parts) == 1 || (len(parts) == 2 && !knownOS[strings.ToLower(parts[0])]) {
		raw = "linux/" + raw
	}
	// containerd normalises as it parses (platforms.Normalize: aarch64,
	// x86_64, armhf, "8" for "v8", ...). It keeps arm64's default variant
	// v8 and leaves arm's default v7 implicit; farm names one platform one
	// way (podman#27586), so it drops the one and writes the other.
	spec, err := platforms.Parse(raw)
	if err != nil {
		return Platform{}, fmt.Errorf("platform %q: %w", s, err)
	}
	os, arch, variant := spec.OS, spec.Architecture, spec.Variant
	if arch == "arm64" && variant == "v8" {
		variant = ""
	}
	if arch == "arm" && variant == "" {
		variant = "v7"
	}
	if !knownOS[os] {
		return Platform{}, fmt.Errorf("platform %q: unknown operating system %q", s, os)
	}
	if !knownArch[arch] {
		return Platform{}, fmt.Errorf("platform %q: unknown architecture %q", s, arch)
	}
	return Platform{OS: os, Arch: arch, Variant: variant}, nil
}

// MustParse is Parse for constants in tests and tables; it panics on error.
func MustParse(s string) Platform {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// FromParts normalises the separate fields a podman info or an image config
// reports (os, architecture, variant).
func FromParts(os, arch, variant string) (Platform, error) {
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return Parse(s)
}

// String is the canonical "os/arch[/variant]" form used in every record.
func (p Platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Arch
	}
	return p.OS + "/" + p.Arch + "/" + p.Variant
}

// Canonical parses s and returns its canonical string.
func Canonical(s string) (string, error) {
	p, err := Parse(s)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// ParseList parses a comma-separated list (as given to --platforms), drops
// duplicates (linux/arm64 and arm64/v8 are one platform) and keeps the order
// of first appearance.
func ParseList(s string) ([]Platform, error) {
	var out []Platform
	seen := map[Platform]bool{}
	for _, item := range strings.Split(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		p, err := Parse(item)
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// CanonicalSet normalises a list of platform strings into a sorted, deduplicated
// list of canonical strings; unparsable entries are returned as an error.
func CanonicalSet(list []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		c, err := Canonical(s)
		if err != nil {
			return nil, err
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out, nil
}
