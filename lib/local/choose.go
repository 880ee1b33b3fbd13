package local

import (
	"fmt"
	"time"

	"github.com/farm-build/farm/lib/conn"
)

// Request is what the user asked for on the command line: podman's global
// flags --url and --connection (-c).
type Request struct {
	URL        string
	Connection string
	// Timeout bounds connecting to the store (0: DefaultTimeout).
	Timeout time.Duration
	// SSH says how to reach an ssh:// store: known_hosts, agent.
	SSH conn.SSHOptions
}

// Choice is one place the local store may be, and why farm looks there.
type Choice struct {
	URI      string
	Identity string
	// Source says where it came from, for the log and errors:
	// "--url", "--connection NAME", "CONTAINER_HOST", ...
	Source string
	// Explicit: the user (or their configuration) named it, so one that
	// does not answer is an error, never replaced by a private service.
	Explicit bool
}

// Choose finds the local store the way podman (remote) finds its service:
// --url, then --connection, then CONTAINER_HOST (with CONTAINER_SSHKEY),
// then CONTAINER_CONNECTION, then the default system connection
// (podman-connections.json's, else containers.conf's); only with none of
// those, the local sockets (Candidates). load reads the connections, and is
// called only when a connection name must be looked up.
func Choose(req Request, getenv func(string) string, load func() (*conn.Inventory, error)) ([]Choice, error) {
	switch {
	case req.URL != "":
		return []Choice{{URI: req.URL, Source: "--url", Explicit: true}}, nil
	case req.Connection != "":
		c, err := named(req.Connection, "--connection "+req.Connection, load)
		return []Choice{c}, err
	case getenv("CONTAINER_HOST") != "":
		return []Choice{{URI: getenv("CONTAINER_HOST"), Identity: getenv("CONTAINER_SSHKEY"), Source: "CONTAINER_HOST", Explicit: true}}, nil
	case getenv("CONTAINER_CONNECTION") != "":
		name := getenv("CONTAINER_CONNECTION")
		c, err := named(name, "CONTAINER_CONNECTION="+name, load)
		return []Choice{c}, err
	}
	inv, err := load()
	if err != nil {
		return nil, err
	}
	if inv.Default != "" {
		c, err := lookup(inv, inv.Default, "default connection "+inv.Default)
		return []Choice{c}, err
	}
	var out []Choice
	for _, uri := range Candidates(getenv) {
		out = append(out, Choice{URI: uri, Source: "local socket"})
	}
	return out, nil
}

func named(name, source string, load func() (*conn.Inventory, error)) (Choice, error) {
	inv, err := load()
	if err != nil {
		return Choice{}, err
	}
	return lookup(inv, name, source)
}

func lookup(inv *conn.Inventory, name, source string) (Choice, error) {
	t, ok := inv.Targets[name]
	if !ok || t.URI == "" {
		return Choice{}, fmt.Errorf("local podman service: %s names no system connection (read %v); list them with `podman system connection list`, fix or set the default with `podman system connection default NAME`, or name the service with --url", source, inv.Sources)
	}
	return Choice{URI: t.URI, Identity: t.Identity, Source: source, Explicit: true}, nil
}
