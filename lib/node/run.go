package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/local"
	"github.com/farm-build/farm/lib/record"
)

// RunOptions are farm-nodes' settings.
type RunOptions struct {
	// Stage names the writer in the end record.
	Stage string
	// Nodes and Farm select the connections (conn.Inventory.Select);
	// neither means every system connection, unless Local alone is asked.
	Nodes []string
	Farm  string
	// Local adds this machine's podman service as node "local".
	Local bool
	// Table writes a table for a person instead of node records.
	Table bool
	// Wide makes the table show every platform and each error in its row.
	Wide  bool
	Probe Options
}

// Run is farm-nodes: probe the selected nodes and write one record (or
// table row) per node. It fails only when no node answered.
func Run(ctx context.Context, opts RunOptions, stdout io.Writer, log *slog.Logger) error {
	targets, done, err := selectTargets(ctx, opts, log)
	if err != nil {
		return err
	}
	defer done()
	if opts.Probe.Log == nil {
		opts.Probe.Log = log
	}
	nodes := Probe(ctx, targets, opts.Probe)
	answered := 0
	for _, n := range nodes {
		if n.Reachable() {
			answered++
		} else {
			log.Warn("node unreachable", "node", n.Name, "error", n.Error)
		}
	}
	if opts.Table {
		if err := WriteTable(stdout, nodes, opts.Wide); err != nil {
			return err
		}
	} else {
		enc := record.NewEncoder(stdout)
		for i := range nodes {
			if err := enc.Write(&nodes[i]); err != nil {
				return err
			}
		}
		if ctx.Err() == nil {
			if err := enc.End(opts.Stage); err != nil {
				return err
			}
		}
	}
	if answered == 0 {
		return fmt.Errorf("none of the %d nodes answered; each node's error is in the warnings above and in its record", len(nodes))
	}
	return nil
}

// selectTargets lists the connections to probe; done stops the local
// service if one was started for --local.
func selectTargets(ctx context.Context, opts RunOptions, log *slog.Logger) ([]conn.Target, func(), error) {
	var targets []conn.Target
	done := func() {}
	if len(opts.Nodes) > 0 || opts.Farm != "" || !opts.Local {
		inv, err := conn.Load(conn.LoadOptions{})
		if err != nil {
			return nil, done, err
		}
		if targets, err = inv.Select(opts.Nodes, opts.Farm); err != nil {
			return nil, done, err
		}
	}
	if opts.Local {
		svc, err := local.Open(ctx, log)
		if err != nil {
			return nil, done, fmt.Errorf("--local: %w", err)
		}
		targets = append(targets, conn.Target{Name: "local", URI: svc.URI, Identity: svc.Identity})
		done = svc.Close
	}
	return targets, done, nil
}
