package dispatch

import (
	"sync"
	"time"

	"github.com/farm-build/farm/lib/progress"
	"github.com/farm-build/farm/lib/record"
)

// phaseShown is how the progress view names each phase.
var phaseShown = map[string]string{
	record.PhaseConnect: "connecting",
	record.PhaseUpload:  "uploading context",
	record.PhaseBuild:   "building",
	record.PhasePush:    "pushing",
	record.PhasePull:    "pulling back",
}

// phaseClock records when each phase of one job began and ended, for the
// job's image or error record (record.Phase), and shows the phase in the
// progress view. Phases follow each other: entering one ends the last.
type phaseClock struct {
	mu     sync.Mutex
	phases []record.Phase
	open   bool
}

// newPhaseClock starts with the phases before the job's own (the run's
// context phase).
func newPhaseClock(first ...record.Phase) *phaseClock {
	return &phaseClock{phases: append([]record.Phase(nil), first...)}
}

// enter ends the open phase and begins phase name on node, shown in view.
func (c *phaseClock) enter(view progress.Job, name, node string) {
	c.mu.Lock()
	c.begin(name, node)
	c.mu.Unlock()
	view.Phase(phaseShown[name])
}

// advance enters phase to only while phase from is the open one: the build
// begins when the upload ends, unless the attempt ended first.
func (c *phaseClock) advance(view progress.Job, from, to string) {
	c.mu.Lock()
	ok := c.open && c.phases[len(c.phases)-1].Name == from
	if ok {
		c.begin(to, c.phases[len(c.phases)-1].Node)
	}
	c.mu.Unlock()
	if ok {
		view.Phase(phaseShown[to])
	}
}

// begin does enter's work under mu.
func (c *phaseClock) begin(name, node string) {
	t := record.Stamp(time.Now())
	if c.open {
		c.phases[len(c.phases)-1].End = t
	}
	c.phases = append(c.phases, record.Phase{Name: name, Node: node, Start: t})
	c.open = true
}

// stop ends the open phase, with err when the attempt failed in it.
func (c *phaseClock) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.open {
		return
	}
	p := &c.phases[len(c.phases)-1]
	p.End = record.Stamp(time.Now())
	if err != nil {
		p.Error = err.Error()
	}
	c.open = false
}

// list returns the phases so far (every one ended).
func (c *phaseClock) list() []record.Phase {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]record.Phase(nil), c.phases...)
}
