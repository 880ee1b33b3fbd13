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
	var b strings.Builder
	err := WriteTable(&b, []record.Node{
		{Name: "lab-1", Native: []string{"linux/amd64"}, Emulated: []string{"linux/arm64"}, CPUs: 2, Memory: 2 << 30, Podman: "4.3.1"},
		{Name: "lab-2", Error: "probing lab-2: no answer within 10s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"NAME", "lab-1", "linux/amd64", "2GiB", "4.3.1", "ok", "no answer within 10s"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
