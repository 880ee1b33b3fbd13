package timeline

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"

	"github.com/farm-build/farm/lib/record"
)

// Colours of the phases; a phase farm does not know is grey.
var colours = map[string]string{
	record.PhaseContext: "#9e9e9e",
	record.PhaseConnect: "#8e6cc0",
	record.PhaseUpload:  "#4a90d9",
	record.PhaseBuild:   "#f0a030",
	record.PhasePush:    "#3aa876",
	record.PhasePull:    "#2bb3b3",
}

var legendOrder = []string{record.PhaseContext, record.PhaseConnect, record.PhaseUpload, record.PhaseBuild, record.PhasePush, record.PhasePull}

// Layout, in SVG user units (pixels).
const (
	width    = 960
	labelW   = 250 // the row labels
	rightW   = 30
	headerH  = 64
	rowH     = 28
	barH     = 16
	axisH    = 36
	legendH  = 40
	fontSize = 12
)

// SVG writes the timeline as a standalone SVG document, titled title.
func (t *Timeline) SVG(w io.Writer, title string) error {
	var b strings.Builder
	t.svg(&b, title, true)
	_, err := io.WriteString(w, b.String())
	return err
}

// HTML writes the timeline as a self-contained HTML page holding the SVG.
func (t *Timeline) HTML(w io.Writer, title string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n", esc(title))
	b.WriteString("<style>body{margin:16px;background:#fff;font-family:sans-serif}</style>\n</head>\n<body>\n")
	t.svg(&b, title, false)
	b.WriteString("</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// rows is what is drawn, top to bottom: the context, then the jobs.
func (t *Timeline) height() int {
	n := len(t.Rows)
	if t.Context != nil {
		n++
	}
	return headerH + n*rowH + axisH + legendH
}

func (t *Timeline) svg(b *strings.Builder, title string, standalone bool) {
	h := t.height()
	if standalone {
		b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	}
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"%d\">\n",
		width, h, width, h, fontSize)
	fmt.Fprintf(b, "<title>%s</title>\n", esc(title))
	b.WriteString("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n")
	t.header(b, title)
	y := headerH
	if t.Context != nil {
		t.row(b, y, "context (client)", "", "context", []Bar{*t.Context}, false)
		y += rowH
	}
	for i, r := range t.Rows {
		first := i == 0 || t.Rows[i-1].Platform != r.Platform
		t.row(b, y, r.Key(), r.Outcome, "job", r.Bars, first)
		y += rowH
	}
	t.marks(b, headerH-4, y)
	t.axis(b, y)
	t.legend(b, y+axisH)
	b.WriteString("</svg>\n")
}

// x maps an offset from the run's start to the plot.
func (t *Timeline) x(d time.Duration) float64 {
	plot := float64(width - labelW - rightW)
	if t.Wall <= 0 {
		return labelW
	}
	return labelW + plot*float64(d)/float64(t.Wall)
}

func (t *Timeline) header(b *strings.Builder, title string) {
	fmt.Fprintf(b, "<text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">%s</text>\n", esc(title))
	summary := fmt.Sprintf("wall %s, bound %s (the context, then the slowest job's phases back to back); %d image%s, %d failed",
		secs(t.Wall), secs(t.Bound), t.Images, plural(t.Images), t.Errors)
	fmt.Fprintf(b, "<text x=\"10\" y=\"42\" class=\"summary\">%s</text>\n", esc(summary))
	if t.Critical != "" {
		fmt.Fprintf(b, "<text x=\"10\" y=\"58\" fill=\"#b00020\">critical path: the context, then %s (outlined)</text>\n", esc(t.Critical))
	}
}

// row draws one row: its label, then its bars, after the wait when it is
// a job's first.
func (t *Timeline) row(b *strings.Builder, y int, label, outcome, class string, bars []Bar, first bool) {
	fmt.Fprintf(b, "<g class=\"row %s\" data-row=\"%s\" data-outcome=\"%s\">\n", class, esc(label), esc(outcome))
	if (y-headerH)/rowH%2 == 1 {
		fmt.Fprintf(b, "<rect x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f4f4f4\"/>\n", y, width, rowH)
	}
	text := label
	if len(text) > 32 {
		text = text[:31] + "…"
	}
	colour := "#000000"
	if outcome == "failed" || outcome == "failed over" {
		colour = "#b00020"
		text += " ✗"
	}
	fmt.Fprintf(b, "<text x=\"10\" y=\"%d\" fill=\"%s\">%s</text>\n", y+rowH/2+fontSize/2-2, colour, esc(text))
	if first && t.Context != nil && len(bars) > 0 {
		t.wait(b, y, bars[0].Start)
	}
	for _, bar := range bars {
		t.bar(b, y+(rowH-barH)/2, label, bar)
	}
	b.WriteString("</g>\n")
}

func (t *Timeline) bar(b *strings.Builder, y int, label string, bar Bar) {
	x0, x1 := t.x(bar.Start), t.x(bar.End)
	w := math.Max(x1-x0, 1)
	fill, ok := colours[bar.Phase]
	if !ok {
		fill = "#cccccc"
	}
	stroke := ""
	switch {
	case bar.Error != "":
		stroke = ` stroke="#b00020" stroke-width="2" stroke-dasharray="4 2"`
	case bar.Critical:
		stroke = ` stroke="#b00020" stroke-width="2"`
	}
	tip := fmt.Sprintf("%s %s: %s (%s to %s)", label, bar.Phase, secs(bar.End-bar.Start), secs(bar.Start), secs(bar.End))
	if bar.Error != "" {
		tip += ": failed: " + bar.Error
	}
	fmt.Fprintf(b, "<rect class=\"phase %s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"%s><title>%s</title></rect>\n",
		esc(bar.Phase), x0, y, w, barH, fill, stroke, esc(tip))
	if bar.Phase == record.PhaseBuild && w > 60 {
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"#000000\">%s</text>\n", x0+3, y+barH-4, esc(secs(bar.End-bar.Start)))
	}
}

// wait draws, before a job's first phase, the time it waited since the
// context was ready (for the whole plan, or for a --jobs slot).
func (t *Timeline) wait(b *strings.Builder, y int, until time.Duration) {
	if until <= t.Context.End {
		return
	}
	x0, x1 := t.x(t.Context.End), t.x(until)
	fmt.Fprintf(b, "<line class=\"wait\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#9e9e9e\" stroke-dasharray=\"2 3\"><title>waiting %s</title></line>\n",
		x0, y+rowH/2, x1, y+rowH/2, esc(secs(until-t.Context.End)))
}

// marks draws the bound and the wall as vertical lines over the rows.
func (t *Timeline) marks(b *strings.Builder, top, bottom int) {
	xb, xw := t.x(t.Bound), t.x(t.Wall)
	fmt.Fprintf(b, "<line class=\"bound\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555555\" stroke-dasharray=\"5 3\"/>\n", xb, top, xb, bottom)
	fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" font-size=\"10\" fill=\"#555555\">bound %s</text>\n", xb-2, top+8, esc(secs(t.Bound)))
	fmt.Fprintf(b, "<line class=\"wall\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000000\"/>\n", xw, top, xw, bottom)
	fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" font-size=\"10\" font-weight=\"bold\">wall %s</text>\n", xw, bottom+28, esc(secs(t.Wall)))
}

// axis draws ticks at a round step under the rows.
func (t *Timeline) axis(b *strings.Builder, y int) {
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000000\"/>\n", labelW, y, width-rightW, y)
	step := tickStep(t.Wall)
	for d := time.Duration(0); d <= t.Wall; d += step {
		x := t.x(d)
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000000\"/>\n", x, y, x, y+4)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%s</text>\n", x, y+15, esc(secs(d)))
	}
}

// tickStep is the first round step that gives at most ten ticks.
func tickStep(wall time.Duration) time.Duration {
	for _, step := range []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	} {
		if wall/step <= 10 {
			return step
		}
	}
	return (wall/10 + time.Hour - 1) / time.Hour * time.Hour
}

func (t *Timeline) legend(b *strings.Builder, y int) {
	x := 10
	for _, p := range legendOrder {
		fmt.Fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", x, y+8, colours[p])
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\">%s</text>\n", x+18, y+19, p)
		x += 30 + 8*len(p)
	}
	fmt.Fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"#ffffff\" stroke=\"#b00020\" stroke-width=\"2\"/>\n", x, y+8)
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\">critical path</text>\n", x+18, y+19)
	x += 120
	fmt.Fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"#ffffff\" stroke=\"#b00020\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/>\n", x, y+8)
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\">failed</text>\n", x+18, y+19)
	x += 80
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#9e9e9e\" stroke-dasharray=\"2 3\"/>\n", x, y+15, x+14, y+15)
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\">waiting</text>\n", x+18, y+19)
}

func secs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func esc(s string) string { return html.EscapeString(s) }
