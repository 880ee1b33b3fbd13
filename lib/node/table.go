package node

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/farm-build/farm/lib/record"
)

// TableWidth is what the table fits (but for a node name longer than 20).
const TableWidth = 100

// shownPlatforms is how many emulated platforms a row names before "+N".
const shownPlatforms = 2

// WriteTable prints node records for a person: one row a node, within
// TableWidth columns: a long list of emulated platforms is summarised
// ("linux/arm64,linux/arm/v7,+10") and an unreachable node's error is
// printed under the table, wrapped. wide prints every platform and the
// errors in the STATUS column instead (farm-nodes --format wide).
func WriteTable(w io.Writer, nodes []record.Node, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPLATFORMS\tEMULATED\tCPUS\tMEMORY\tPODMAN\tSTATUS")
	var notes []string
	for _, n := range nodes {
		status, emulated := "ok", orDash(n.Emulated)
		if n.Error != "" {
			status = n.Error
			if !wide {
				status = "unreachable (below)"
				notes = append(notes, n.Name+": "+n.Error)
			}
		}
		if !wide && len(n.Emulated) > shownPlatforms {
			emulated = fmt.Sprintf("%s,+%d", strings.Join(n.Emulated[:shownPlatforms], ","), len(n.Emulated)-shownPlatforms)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.Name, orDash(n.Native), emulated,
			n.CPUs, memory(n.Memory), dash(n.Podman), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, note := range notes {
		if _, err := io.WriteString(w, "\n"+Wrap(note, TableWidth, "    ")); err != nil {
			return err
		}
	}
	return nil
}

// Wrap breaks text into lines of at most width columns at spaces, the
// lines after the first indented; a word longer than a line stays whole.
func Wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) > width:
			b.WriteString(line + "\n")
			line = indent + word
		default:
			line += " " + word
		}
	}
	return b.String() + line + "\n"
}

func orDash(list []string) string {
	return dash(strings.Join(list, ","))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func memory(n int64) string {
	if n <= 0 {
		return "-"
	}
	return units.BytesSize(float64(n))
}
