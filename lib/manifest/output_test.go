package manifest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farm-build/farm/lib/record"
)

func TestOutputForPeople(t *testing.T) {
	var b bytes.Buffer
	o := NewOutput(&b, true)
	o.Images = []*record.Image{
		{Platform: "linux/amd64", Node: "lab-1", Size: 4_200_000},
		{Platform: "linux/arm64", Node: "lab-2", Size: 4_100_000},
	}
	o.Write(&record.Error{Stage: "farm-build", Platform: "linux/arm/v7", Node: "lab-3", Error: "RUN failed\nmore"})
	o.Write(&record.Manifest{Name: "localhost:5000/demo:latest", Digest: "sha256:" + strings.Repeat("e3b3", 16), Instances: []record.Instance{
		{Platform: "linux/amd64", Digest: "sha256:" + strings.Repeat("27de", 16)},
		{Platform: "linux/arm64", Digest: "sha256:" + strings.Repeat("ebd1", 16)},
	}})
	o.End("farm-manifest")
	want := `failed: linux/arm/v7 on lab-3: RUN failed
localhost:5000/demo:latest sha256:e3b3e3b3e3b3, 2 platforms
  linux/amd64  lab-1  sha256:27de27de27de  4.2MB
  linux/arm64  lab-2  sha256:ebd1ebd1ebd1  4.1MB
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestOutputRecords(t *testing.T) {
	var b bytes.Buffer
	o := NewOutput(&b, false)
	o.Write(&record.Manifest{Name: "x", Instances: []record.Instance{}})
	o.End("farm-manifest")
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"kind":"manifest"`) || !strings.Contains(lines[1], `"kind":"end"`) {
		t.Errorf("piped output must be the records:\n%s", b.String())
	}
}

func TestWriteDigestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest")
	if err := WriteDigestFile(path, "sha256:abc"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "sha256:abc" {
		t.Errorf("digest file %q, want the digest alone, as podman", data)
	}
	if err := WriteDigestFile(path, ""); err == nil {
		t.Error("no digest must be an error")
	}
}
