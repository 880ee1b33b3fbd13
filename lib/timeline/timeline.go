// Package timeline draws where a farm-build run's time went: from the
// phase times in image and error records (record.Phase) it makes one row
// per platform@node, the phases of each job in colours, the critical path
// marked, the run's wall time and its bound, as one self-contained SVG or
// HTML page (no script, no fonts or styles from elsewhere).
package timeline

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// Bar is one phase on the time axis, as offsets from the run's start.
type Bar struct {
	Phase      string
	Start, End time.Duration
	// Error is set when the attempt failed in this phase.
	Error string
	// Critical: the phase is on the run's critical path.
	Critical bool
}

// Row is one platform on one node: an attempt of a job.
type Row struct {
	Platform, Node string
	Bars           []Bar
	// Outcome is "image" (the image came from here), "failed over" (the
	// attempt failed, another node took the job) or "failed".
	Outcome string
}

func (r Row) begin() time.Duration {
	if len(r.Bars) == 0 {
		return 0
	}
	return r.Bars[0].Start
}

// Key names the row as the progress view does: platform@node.
func (r Row) Key() string { return r.Platform + "@" + r.Node }

// Timeline is a run laid out for drawing.
type Timeline struct {
	// Start is when the run's first phase began.
	Start time.Time
	// Context is the client's context phase, shared by every job (zero when
	// the records have none).
	Context *Bar
	Rows    []Row
	// Wall is from the first phase's start to the last one's end.
	Wall time.Duration
	// Bound is the least wall these jobs allow: the context phase, then the
	// slowest job's phases back to back, as if every job had started when
	// the context was ready and nothing waited.
	Bound time.Duration
	// Critical is the platform of the job that ended last: its phases, after
	// the context, are the critical path.
	Critical string
	// Images and Errors count the records drawn.
	Images, Errors int
}

// ErrNoPhases: the records carry no phase times to draw.
var ErrNoPhases = errors.New("no image or error record with phase times (farm-build writes them in its records' \"phases\")")

// job is one record's phases, parsed.
type job struct {
	platform string
	node     string // the record's node
	image    bool
	phases   []record.Phase
	starts   []time.Time
	ends     []time.Time
}

// New lays out the image and error records that carry phases; others are
// ignored.
func New(recs []record.Record) (*Timeline, error) {
	jobs, err := parse(recs)
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, ErrNoPhases
	}
	t := &Timeline{Start: jobs[0].starts[0]}
	var last time.Time
	for _, j := range jobs {
		for i := range j.phases {
			if j.starts[i].Before(t.Start) {
				t.Start = j.starts[i]
			}
			if j.ends[i].After(last) {
				last, t.Critical = j.ends[i], j.platform
			}
		}
	}
	t.Wall = last.Sub(t.Start)
	for _, j := range jobs {
		t.add(j)
	}
	slices.SortStableFunc(t.Rows, func(a, b Row) int {
		if c := cmp.Compare(a.Platform, b.Platform); c != 0 {
			return c
		}
		return cmp.Compare(a.begin(), b.begin())
	})
	return t, nil
}

// parse reads the phases of every image and error record that has them.
func parse(recs []record.Record) ([]job, error) {
	var jobs []job
	for _, r := range recs {
		var j job
		switch r := r.(type) {
		case *record.Image:
			j = job{platform: r.Platform, node: r.Node, image: true, phases: r.Phases}
		case *record.Error:
			j = job{platform: r.Platform, node: r.Node, phases: r.Phases}
		default:
			continue
		}
		if len(j.phases) == 0 {
			continue
		}
		for _, p := range j.phases {
			start, end, err := p.Times()
			if err != nil {
				return nil, fmt.Errorf("%s record for %s: %w", r.Kind(), j.platform, err)
			}
			j.starts, j.ends = append(j.starts, start), append(j.ends, end)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// add puts a job's phases on rows (one per node it ran on), its context
// phase on the timeline's, and counts it into the bound.
func (t *Timeline) add(j job) {
	critical := j.platform == t.Critical
	var own time.Duration
	first := len(t.Rows)
	for i, p := range j.phases {
		b := Bar{Phase: p.Name, Start: j.starts[i].Sub(t.Start), End: j.ends[i].Sub(t.Start), Error: p.Error, Critical: critical}
		if p.Name == record.PhaseContext && p.Node == "" {
			if t.Context == nil || b.End > t.Context.End {
				b.Critical = true
				t.Context = &b
			}
			continue
		}
		own += b.End - b.Start
		if n := len(t.Rows); n == first || t.Rows[n-1].Node != p.Node {
			t.Rows = append(t.Rows, Row{Platform: j.platform, Node: p.Node, Outcome: "failed over"})
		}
		row := &t.Rows[len(t.Rows)-1]
		row.Bars = append(row.Bars, b)
	}
	if len(t.Rows) == first {
		// Failed before it reached a node: a row without bars.
		t.Rows = append(t.Rows, Row{Platform: j.platform, Node: j.node})
	}
	t.Rows[len(t.Rows)-1].Outcome = map[bool]string{true: "image", false: "failed"}[j.image]
	if j.image {
		t.Images++
	} else {
		t.Errors++
	}
	var ctx time.Duration
	if t.Context != nil {
		ctx = t.Context.End - t.Context.Start
	}
	t.Bound = max(t.Bound, ctx+own)
}
