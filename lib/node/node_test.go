package node

import (
	"reflect"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/record"
)

func TestParseBinfmt(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"nothing registered", "", []string{}},
		{"debian qemu-user-static", "qemu-aarch64 /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nqemu-riscv64 /usr/libexec/qemu-binfmt/riscv64-binfmt-P\n",
			[]string{"linux/arm64", "linux/riscv64"}},
		{"arm covers v6 and v7", "qemu-arm /usr/bin/qemu-arm-static\n", []string{"linux/arm/v6", "linux/arm/v7"}},
		{"named by interpreter", "aarch64-emu /usr/bin/qemu-aarch64-static\n", []string{"linux/arm64"}},
		{"not qemu", "python3.11 /usr/bin/python3.11\njar /usr/bin/jexec\n", []string{}},
		{"mips names", "qemu-mips64el x\nqemu-mipsel y\n", []string{"linux/mips64le", "linux/mipsle"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseBinfmt(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	emulated := []string{"linux/386", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm64", "linux/mips64le",
		"linux/ppc64le", "linux/riscv64", "linux/s390x", "linux/mips64", "linux/loong64", "linux/ppc64"}
	nodes := []record.Node{
		{Name: "lab-1", Native: []string{"linux/amd64"}, Emulated: emulated, CPUs: 2, Memory: 2 << 30, Podman: "4.3.1"},
		{Name: "lab-2", Error: "probing lab-2: no answer within 10s (--timeout); is the node up? try: podman --connection lab-2 info, or give a slow node a longer --timeout"},
	}
	for _, tt := range []struct {
		wide bool
		want []string
	}{
		{false, []string{"NAME", "lab-1", "linux/amd64", "linux/386,linux/arm/v5,+10", "2GiB", "4.3.1", "ok", "unreachable (below)",
			"\nlab-2: probing lab-2: no answer within 10s", "\n    lab-2 info, or give"}},
		{true, []string{strings.Join(emulated, ","), "probing lab-2: no answer within 10s (--timeout); is the node up? try: podman --connection lab-2 info"}},
	} {
		var b strings.Builder
		if err := WriteTable(&b, nodes, tt.wide); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range tt.want {
			if !strings.Contains(out, want) {
				t.Errorf("wide %v: table lacks %q:\n%s", tt.wide, want, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if !tt.wide && len(line) > TableWidth {
				t.Errorf("line wider than %d: %q", TableWidth, line)
			}
		}
	}
}
