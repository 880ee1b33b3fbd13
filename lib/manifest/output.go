package manifest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/farm-build/farm/lib/record"
	"github.com/farm-build/farm/lib/stage"
)

// Output is where farm-manifest's results go: records for the next
// program, or, on a terminal, lines for a person: the list's name, then a
// line per platform with its node, digest and size, or what failed.
type Output struct {
	w     io.Writer
	enc   *record.Encoder // nil on a terminal
	human bool
	// Images are the image records the list is made of (for nodes and
	// sizes on a terminal).
	Images []*record.Image
}

// NewOutput writes records to w, or lines for people when terminal.
func NewOutput(w io.Writer, terminal bool) *Output {
	if terminal {
		return &Output{w: w, human: true}
	}
	return &Output{w: w, enc: record.NewEncoder(w)}
}

// Write writes one record, or its lines for people.
func (o *Output) Write(r record.Record) error {
	if !o.human {
		return o.enc.Write(r)
	}
	switch r := r.(type) {
	case *record.Manifest:
		return WriteSummary(o.w, r, o.Images)
	case *record.Error:
		line := "failed: " + whatFailed(r)
		if width, ok := stage.TerminalWidth(o.w); ok {
			line = strings.Join(stage.Wrap(line, width), "\n")
		}
		_, err := fmt.Fprintln(o.w, line)
		return err
	}
	return nil
}

// End ends the record stream (nothing on a terminal: a person needs no
// end record).
func (o *Output) End(stage string) error {
	if o.human {
		return nil
	}
	return o.enc.End(stage)
}

func whatFailed(e *record.Error) string {
	where := e.Stage
	if e.Platform != "" {
		where = e.Platform
		if e.Node != "" {
			where += " on " + e.Node
		}
	}
	msg, _, _ := strings.Cut(e.Error, "\n")
	return where + ": " + msg
}

// WriteSummary prints a manifest list for a person: its name and digest,
// then a line per platform with the node that built it, its digest and
// size, as podman prints short ids.
func WriteSummary(w io.Writer, m *record.Manifest, imgs []*record.Image) error {
	byPlatform := map[string]*record.Image{}
	for _, img := range imgs {
		byPlatform[img.Platform] = img
	}
	head := m.Name
	if m.Pushed != "" {
		head += " (pushed to " + m.Pushed + ")"
	}
	fmt.Fprintf(w, "%s %s, %d platforms\n", head, shortDigest(m.Digest), len(m.Instances))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, in := range m.Instances {
		node, size := "-", "-"
		if img := byPlatform[in.Platform]; img != nil {
			node = img.Node
			if img.Size > 0 {
				size = units.HumanSize(float64(img.Size))
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", in.Platform, node, shortDigest(in.Digest), size)
	}
	return tw.Flush()
}

// shortDigest is "sha256:" and 12 hex digits, as podman shortens ids.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// WriteDigestFile writes the pushed list's digest to path, as podman
// manifest push --digestfile does: the digest alone, no newline.
func WriteDigestFile(path, digest string) error {
	if digest == "" {
		return fmt.Errorf("--digestfile %s: the registry reported no digest for the list", path)
	}
	if err := os.WriteFile(path, []byte(digest), 0o644); err != nil {
		return fmt.Errorf("--digestfile: %w", err)
	}
	return nil
}
