package node

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/farm-build/farm/lib/record"
)

// WriteTable prints node records for a person: one row a node.
func WriteTable(w io.Writer, nodes []record.Node) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPLATFORMS\tEMULATED\tCPUS\tMEMORY\tPODMAN\tSTATUS")
	for _, n := range nodes {
		status := "ok"
		if n.Error != "" {
			status = n.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.Name, orDash(n.Native), orDash(n.Emulated),
			n.CPUs, memory(n.Memory), dash(n.Podman), status)
	}
	return tw.Flush()
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
