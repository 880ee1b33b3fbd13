package buildflags

import (
	"sort"
	"strings"
)

// DocsTable is the Markdown table of podman build's flags and what
// farm-build does with each, as docs/farm-build.md shows it.
func DocsTable() string {
	names := make([]string, 0, len(Table))
	for name := range Table {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| podman build flag | On farm-build | Why |\n|---|---|---|\n")
	for _, name := range names {
		st := Table[name]
		b.WriteString("| `--" + name + "` | " + string(st.Kind) + " | " + strings.ReplaceAll(st.Why, "|", `\|`) + " |\n")
	}
	return b.String()
}
