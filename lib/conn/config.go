// Package conn knows which podman services make up the farm (system
// connections in containers.conf, podman 5's podman-connections.json, named
// farms) and opens connections to them: SSH with strict host-key checking and
// no prompts, a local socket that tunnels to the node's podman service, and
// commands on the node for probes and clean-up.
package conn

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containers/common/pkg/config"
)

// Target is one podman service farm can use.
type Target struct {
	Name     string
	URI      string
	Identity string
}

// Inventory is every known connection and farm.
type Inventory struct {
	Targets map[string]Target
	Farms   map[string][]string
	// Default is the default connection's name (podman-connections.json's
	// Connection.Default, else containers.conf's active_service), if any.
	Default string
	// Sources lists the files read, for error messages.
	Sources []string
}

// LoadOptions says where to look. Empty fields mean podman's defaults, so
// farm sees exactly what `podman system connection list` sees.
type LoadOptions struct {
	// ConnectionsJSON is podman 5's podman-connections.json; empty means
	// $PODMAN_CONNECTIONS_CONF, else $XDG_CONFIG_HOME/containers/, else
	// ~/.config/containers/.
	ConnectionsJSON string
	Getenv          func(string) string
}

// Load reads containers.conf (with drop-ins, CONTAINERS_CONF and friends, by
// containers/common) and podman-connections.json when present. A connection
// in podman-connections.json wins over one of the same name in
// containers.conf, as in podman 5.
func Load(opts LoadOptions) (*Inventory, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, err := config.New(nil)
	if err != nil {
		return nil, fmt.Errorf("reading containers.conf: %w; fix the file it names (podman system connection list reads the same files), or point CONTAINERS_CONF at another", err)
	}
	inv := &Inventory{Targets: map[string]Target{}, Farms: map[string][]string{}}
	for name, d := range cfg.Engine.ServiceDestinations {
		inv.Targets[name] = Target{Name: name, URI: d.URI, Identity: d.Identity}
	}
	for name, nodes := range cfg.Farms.List {
		inv.Farms[name] = nodes
	}
	inv.Default = cfg.Engine.ActiveService
	inv.Sources = append(inv.Sources, "containers.conf")

	path := opts.ConnectionsJSON
	if path == "" {
		path = connectionsJSONPath(getenv)
	}
	if path != "" {
		if err := inv.readConnectionsJSON(path); err != nil {
			return nil, err
		}
	}
	return inv, nil
}

func connectionsJSONPath(getenv func(string) string) string {
	if p := getenv("PODMAN_CONNECTIONS_CONF"); p != "" {
		return p
	}
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "containers", "podman-connections.json")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "containers", "podman-connections.json")
	}
	return ""
}

// connectionsFile is podman 5's format (containers/common pkg/config
// ConnectionsFile); its fields carry no json tags, hence the Go names.
type connectionsFile struct {
	Connection struct {
		Default     string
		Connections map[string]struct {
			URI       string
			Identity  string
			IsMachine bool
		}
	}
	Farm struct {
		List map[string][]string
	}
}

func (inv *Inventory) readConnectionsJSON(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w; check its permissions", path, err)
	}
	var f connectionsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("reading %s: %w; fix the JSON, or set PODMAN_CONNECTIONS_CONF to another file", path, err)
	}
	for name, d := range f.Connection.Connections {
		inv.Targets[name] = Target{Name: name, URI: d.URI, Identity: d.Identity}
	}
	for name, nodes := range f.Farm.List {
		inv.Farms[name] = nodes
	}
	if f.Connection.Default != "" {
		inv.Default = f.Connection.Default
	}
	inv.Sources = append(inv.Sources, path)
	return nil
}

// ErrNodeAndFarm: a farm is either ad hoc or named, not both.
var ErrNodeAndFarm = errors.New("--node and --farm exclude each other: --node picks an ad-hoc farm, --farm a named one")

// Select picks the farm: the named nodes (--node), a named farm (--farm), or
// every connection when neither is given. The result is sorted by name so
// output never depends on map order.
func (inv *Inventory) Select(nodes []string, farm string) ([]Target, error) {
	if len(nodes) > 0 && farm != "" {
		return nil, ErrNodeAndFarm
	}
	var names []string
	switch {
	case len(nodes) > 0:
		names = nodes
	case farm != "":
		members, ok := inv.Farms[farm]
		if !ok {
			return nil, fmt.Errorf("no farm named %q in %s (known farms: %s); add one with `podman farm create %s CONNECTION...` or a [farms] table in containers.conf",
				farm, strings.Join(inv.Sources, ", "), listOrNone(sortedKeys(inv.Farms)), farm)
		}
		if len(members) == 0 {
			return nil, fmt.Errorf("farm %q has no nodes; add some with `podman farm update --add CONNECTION %s` or in containers.conf [farms], or use --node", farm, farm)
		}
		names = members
	default:
		names = sortedKeys(inv.Targets)
		if len(names) == 0 {
			return nil, errors.New("no system connections configured; add one with `podman system connection add NAME ssh://user@host/run/podman/podman.sock`, or use --local")
		}
	}
	seen := map[string]bool{}
	var out []Target
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		t, ok := inv.Targets[name]
		if !ok {
			return nil, fmt.Errorf("no system connection named %q (known: %s); see `podman system connection list`",
				name, listOrNone(sortedKeys(inv.Targets)))
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// SplitList reads a flag's list given either way a podman user would:
// --node a,b or --node a --node b.
func SplitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
