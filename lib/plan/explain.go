package plan

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// explain records why t went to win. class holds the candidates the choice
// was made among; cands all of them (class first).
func explain(t *target, nodes []node, cands, class []ranked, win ranked) Decision {
	chosen := slices.Clone(class)
	slices.SortFunc(chosen, func(a, b ranked) int { return byLoad(nodes, a, b) })
	others := slices.Clone(cands[len(class):])
	slices.SortFunc(others, func(a, b ranked) int { return byScore(nodes, a, b) })

	d := Decision{Platform: t.name, Node: nodes[win.idx].rec.Name, Emulated: win.emulated}
	for _, c := range append(chosen, others...) {
		n := &nodes[c.idx]
		d.Candidates = append(d.Candidates, Candidate{
			Node: n.rec.Name, Emulated: c.emulated, Jobs: n.jobs, CPUs: n.cpus, Score: c.score,
		})
	}

	kind := "native"
	why := ""
	if win.emulated {
		kind = "emulated"
		why = fmt.Sprintf("emulated because no reachable node builds %s natively; ", t.name)
	}
	idle := 0
	for _, c := range class {
		if nodes[c.idx].jobs == 0 {
			idle++
		}
	}
	w := &nodes[win.idx]
	switch {
	case len(class) == 1:
		why += fmt.Sprintf("the only %s candidate", kind)
	case w.jobs == 0 && idle == 1:
		why += fmt.Sprintf("the only idle one of %d %s candidates", len(class), kind)
	case w.jobs == 0:
		why += fmt.Sprintf("highest rendezvous score of the %d idle %s candidates", idle, kind)
	default:
		same := 0
		for _, c := range class {
			if n := &nodes[c.idx]; (n.jobs+1)*w.cpus == (w.jobs+1)*n.cpus {
				same++
			}
		}
		why += fmt.Sprintf("all %d %s candidates already have jobs; lowest projected load (jobs+1)/cpus = %d/%d",
			len(class), kind, w.jobs+1, w.cpus)
		if same > 1 {
			why += fmt.Sprintf(", highest rendezvous score of the %d with that load", same)
		}
	}
	d.Reason = why
	return d
}

// WriteExplain prints decisions for people: one paragraph per platform, in
// the order they were placed.
func WriteExplain(w io.Writer, decisions []Decision, opts Options) error {
	em := opts.Emulation
	if em == "" {
		em = EmulationAuto
	}
	// Format everything first: tabwriter aligns a whole table at once, and
	// one Write leaves one error to check.
	var buf bytes.Buffer
	plural := "s"
	if len(decisions) == 1 {
		plural = ""
	}
	fmt.Fprintf(&buf, "%s: placing %d platform%s, fewest candidates first (affinity %q, emulation %s)\n",
		Stage, len(decisions), plural, opts.Affinity, em)
	for _, d := range decisions {
		fmt.Fprintf(&buf, "%s: %s -> %s: %s\n", Stage, d.Platform, d.Node, d.Reason)
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\t\tNODE\tCLASS\tJOBS\tCPUS\tLOAD\tSCORE")
		for _, c := range d.Candidates {
			mark, class := "", "native"
			if c.Node == d.Node {
				mark = "*"
			}
			if c.Emulated {
				class = "emulated"
			}
			// Idle nodes are all equal, whatever their size; a busy node's
			// LOAD is the projected (jobs+1)/cpus it would carry with this
			// platform, which is what busy nodes are compared by.
			load := "idle"
			if c.Jobs > 0 {
				load = fmt.Sprintf("%.3f", float64(c.Jobs+1)/float64(c.CPUs))
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%d\t%d\t%s\t%016x\n",
				mark, c.Node, class, c.Jobs, c.CPUs, load, c.Score)
		}
		tw.Flush() // into a bytes.Buffer: cannot fail
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing --explain output: %w", err)
	}
	return nil
}
