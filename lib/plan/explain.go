package plan

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/docker/go-units"
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
			Builds: n.builds, Stop: n.rec.Stop, Load: n.rec.Load,
		})
	}

	kind := "native"
	why := ""
	if win.emulated {
		kind = "emulated"
		why = fmt.Sprintf("emulated because no reachable node builds %s natively; ", t.name)
	}
	d.Reason = why + reason(nodes, class, chosen, kind)
	return d
}

// reason says which rule of byLoad put the chosen node (chosen[0]) before
// the next one of its class.
func reason(nodes []node, class, chosen []ranked, kind string) string {
	if len(class) == 1 {
		return fmt.Sprintf("the only %s candidate", kind)
	}
	w, next := &nodes[chosen[0].idx], &nodes[chosen[1].idx]
	idle := 0
	for _, c := range class {
		if n := &nodes[c.idx]; n.idle() && !n.lowStorage {
			idle++
		}
	}
	busy := fmt.Sprintf("all %d %s candidates are busy (jobs of this plan or builds running there); lowest projected load (jobs+builds+1)/cpus = %d/%d",
		len(class), kind, w.work(), w.cpus)
	var then string
	switch {
	case w.lowStorage:
		return fmt.Sprintf("every %s candidate has less than %d GiB of storage free; %s", kind, MinStorageFree>>30, reason(nodes, class, chosen[:1], kind))
	case next.lowStorage:
		return fmt.Sprintf("the other %s candidates have less than %d GiB of storage free", kind, MinStorageFree>>30)
	case w.idle() != next.idle():
		return fmt.Sprintf("the only idle one of %d %s candidates", len(class), kind)
	case !w.idle() && w.work()*next.cpus != next.work()*w.cpus:
		return busy
	case w.noStop != next.noStop:
		then = fmt.Sprintf("its builds can be stopped (%s's cannot: stop none)", next.rec.Name)
	case w.saturated != next.saturated:
		then = fmt.Sprintf("its load average is below its cpus (%s's is not)", next.rec.Name)
	default:
		then = "highest rendezvous score"
	}
	if w.idle() {
		if then == "highest rendezvous score" { // the common case, said as before
			return fmt.Sprintf("%s of the %d idle %s candidates", then, idle, kind)
		}
		return fmt.Sprintf("among the %d idle %s candidates, %s", idle, kind, then)
	}
	return busy + ", then " + then
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
		fmt.Fprintln(tw, "\t\tNODE\tCLASS\tJOBS\tBUILDS\tCPUS\tLOAD\tAVG\tFREE\tSTOP\tSCORE")
		for _, c := range d.Candidates {
			mark, class := "", "native"
			if c.Node == d.Node {
				mark = "*"
			}
			if c.Emulated {
				class = "emulated"
			}
			// Idle nodes are all equal, whatever their size; a busy node's
			// LOAD is the projected (jobs+builds+1)/cpus it would carry
			// with this platform, which is what busy nodes are compared by.
			load := "idle"
			if c.Jobs+c.Builds > 0 {
				load = fmt.Sprintf("%.3f", float64(c.Jobs+c.Builds+1)/float64(c.CPUs))
			}
			avg, free, stop := "-", "-", c.Stop
			if c.Load != nil {
				avg = fmt.Sprintf("%.2f", c.Load.Average)
				free = units.BytesSize(float64(c.Load.StorageFree))
			}
			if stop == "" {
				stop = "-"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%016x\n",
				mark, c.Node, class, c.Jobs, c.Builds, c.CPUs, load, avg, free, stop, c.Score)
		}
		tw.Flush() // into a bytes.Buffer: cannot fail
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing --explain output: %w", err)
	}
	return nil
}
