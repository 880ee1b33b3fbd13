package platform

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		// arm64: every spelling is one platform, without the default v8.
		{"arm64", "linux/arm64"},
		{"linux/arm64", "linux/arm64"},
		{"linux/arm64/v8", "linux/arm64"},
		{"arm64/v8", "linux/arm64"},
		{"aarch64", "linux/arm64"},
		{"linux/aarch64", "linux/arm64"},
		{"linux/arm64/8", "linux/arm64"},
		// A later arm64 variant is a different platform and is kept.
		{"linux/arm64/v9", "linux/arm64/v9"},

		{"amd64", "linux/amd64"},
		{"x86_64", "linux/amd64"},
		{"x86-64", "linux/amd64"},
		{"linux/amd64", "linux/amd64"},
		{"linux/x86_64", "linux/amd64"},
		{"linux/amd64/v1", "linux/amd64"},
		{"linux/amd64/v3", "linux/amd64/v3"},

		// arm: the default variant v7 is spelled out, so "arm" and
		// "arm/v7" compare equal.
		{"arm", "linux/arm/v7"},
		{"arm/v7", "linux/arm/v7"},
		{"linux/arm", "linux/arm/v7"},
		{"armhf", "linux/arm/v7"},
		{"linux/armhf", "linux/arm/v7"},
		{"linux/arm/v7", "linux/arm/v7"},
		{"linux/arm/7", "linux/arm/v7"},
		{"arm/v6", "linux/arm/v6"},
		{"armel", "linux/arm/v6"},
		{"linux/arm/v6", "linux/arm/v6"},
		{"arm/v5", "linux/arm/v5"},

		{"ppc64le", "linux/ppc64le"},
		{"s390x", "linux/s390x"},
		{"riscv64", "linux/riscv64"},
		{"386", "linux/386"},
		{"i386", "linux/386"},
		{"linux/riscv64", "linux/riscv64"},

		// Case and surrounding space do not matter.
		{"Linux/ARM64", "linux/arm64"},
		{"  linux/amd64\n", "linux/amd64"},
		{"LINUX/ARM/V7", "linux/arm/v7"},

		// Other operating systems are kept (farm only builds Linux, but
		// a platform string must still mean what it says).
		{"windows/amd64", "windows/amd64"},
		{"freebsd/arm64", "freebsd/arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
			c, err := Canonical(tt.in)
			if err != nil || c != tt.want {
				t.Errorf("Canonical(%q) = %q, %v; want %q", tt.in, c, err, tt.want)
			}
			// The canonical form is a fixed point: every stage may parse
			// what the stage before it wrote.
			again, err := Parse(p.String())
			if err != nil || again != p {
				t.Errorf("Parse(%q) = %+v, %v; want %+v", p.String(), again, err, p)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in string
		// want is a part of the message that tells the user what is wrong.
		want string
	}{
		{"", "empty platform"},
		{"   ", "empty platform"},
		{"foo", `unknown architecture "foo"`},
		{"linux/foo", `unknown architecture "foo"`},
		{"amd46", `unknown architecture "amd46"`},
		{"linux/amd46", `unknown architecture "amd46"`},
		{"foo/arm64/v8", `unknown operating system "foo"`},
		{"a/b/c/d", "want os/arch[/variant]"},
		{"linux/arm64/v8/x", "want os/arch[/variant]"},
		{"*", "wildcards not yet supported"},
		{"linux/*", "wildcards not yet supported"},
		{"linux/", "invalid component"},
		{"/arm64", "invalid component"},
		{"linux//arm64", "invalid component"},
		{"linux/arm64/", "invalid component"},
		{"linux/arm 64", "invalid component"},
		{"linux", `unknown architecture "linux"`},
		{"arm64,amd64", "invalid component"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tt.in, p)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error %q does not say %q", tt.in, err, tt.want)
			}
			// Every message quotes the input, so a user finds the bad
			// entry in a long --platforms list.
			if tt.in != "" && strings.TrimSpace(tt.in) != "" && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("Parse(%q) error %q does not quote the input", tt.in, err)
			}
			if p != (Platform{}) {
				t.Errorf("Parse(%q) returned %+v with the error, want the zero Platform", tt.in, p)
			}
			if _, err := Canonical(tt.in); err == nil {
				t.Errorf("Canonical(%q) succeeded, want an error", tt.in)
			}
		})
	}
}

func TestFromParts(t *testing.T) {
	tests := []struct {
		os, arch, variant string
		want              string
	}{
		{"linux", "arm64", "v8", "linux/arm64"},
		{"linux", "arm64", "", "linux/arm64"},
		{"linux", "aarch64", "", "linux/arm64"},
		{"linux", "arm", "", "linux/arm/v7"},
		{"linux", "arm", "v6", "linux/arm/v6"},
		{"linux", "x86_64", "", "linux/amd64"},
	}
	for _, tt := range tests {
		p, err := FromParts(tt.os, tt.arch, tt.variant)
		if err != nil || p.String() != tt.want {
			t.Errorf("FromParts(%q, %q, %q) = %v, %v; want %s", tt.os, tt.arch, tt.variant, p, err, tt.want)
		}
	}
	if _, err := FromParts("linux", "", ""); err == nil {
		t.Error(`FromParts("linux", "", "") succeeded, want an error`)
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse("aarch64"); got != (Platform{OS: "linux", Arch: "arm64"}) {
		t.Errorf("MustParse(aarch64) = %+v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParse(amd46) did not panic")
		}
	}()
	MustParse("amd46")
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "arm64,linux/arm64/v8,amd64", want: []string{"linux/arm64", "linux/amd64"}},
		{in: "amd64,arm64", want: []string{"linux/amd64", "linux/arm64"}},
		{in: "x86_64, linux/amd64 ,amd64", want: []string{"linux/amd64"}},
		{in: "arm,arm/v7,armhf,arm/v6", want: []string{"linux/arm/v7", "linux/arm/v6"}},
		{in: "arm64,,amd64,", want: []string{"linux/arm64", "linux/amd64"}},
		{in: "", want: nil},
		{in: " , ", want: nil},
		{in: "arm64,amd46", wantErr: `"amd46"`},
		{in: "arm64,linux/arm64/v8/x", wantErr: `"linux/arm64/v8/x"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseList(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseList(%q) = %v, %v; want an error naming %s", tt.in, got, err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("ParseList(%q) returned %v with the error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseList(%q): %v", tt.in, err)
			}
			var strs []string
			for _, p := range got {
				strs = append(strs, p.String())
			}
			if !reflect.DeepEqual(strs, tt.want) {
				t.Errorf("ParseList(%q) = %v, want %v", tt.in, strs, tt.want)
			}
		})
	}
}

func TestCanonicalSet(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: []string{"linux/arm64/v8", "amd64", "aarch64", "x86_64"}, want: []string{"linux/amd64", "linux/arm64"}},
		{in: []string{"s390x", "arm/v6", "arm", "ppc64le"}, want: []string{"linux/arm/v6", "linux/arm/v7", "linux/ppc64le", "linux/s390x"}},
		{in: nil, want: nil},
		{in: []string{"arm64", "foo"}, wantErr: `"foo"`},
	}
	for _, tt := range tests {
		got, err := CanonicalSet(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CanonicalSet(%q) = %v, %v; want an error naming %s", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CanonicalSet(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestZeroPlatformString(t *testing.T) {
	// The zero value is invalid; its string must not parse back into a
	// platform, so it cannot slip into a record unnoticed.
	if _, err := Parse(Platform{}.String()); err == nil {
		t.Errorf("Parse(%q) succeeded", Platform{}.String())
	}
}
