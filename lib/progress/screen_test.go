package progress

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// screen is a terminal as far as the tty view drives one: text, "\r",
// "\n" (as the terminal's output processing makes it, CR LF), cursor up
// (ESC [ n A) and clear to the end of the screen (ESC [ J).
type screen struct {
	lines    [][]rune
	row, col int
}

var csi = regexp.MustCompile(`^\x1b\[(\d*)([AJ])`)

func (s *screen) Write(p []byte) (int, error) {
	in := string(p)
	for len(in) > 0 {
		if m := csi.FindStringSubmatch(in); m != nil {
			n, _ := strconv.Atoi(m[1])
			if m[2] == "A" {
				s.row = max(s.row-n, 0)
			} else {
				s.grow()
				s.lines[s.row] = s.lines[s.row][:min(s.col, len(s.lines[s.row]))]
				s.lines = s.lines[:s.row+1]
			}
			in = in[len(m[0]):]
			continue
		}
		r := []rune(in)[0]
		in = in[len(string(r)):]
		switch r {
		case '\r':
			s.col = 0
		case '\n':
			s.row, s.col = s.row+1, 0
		default:
			s.grow()
			for len(s.lines[s.row]) <= s.col {
				s.lines[s.row] = append(s.lines[s.row], ' ')
			}
			s.lines[s.row][s.col] = r
			s.col++
		}
	}
	return len(p), nil
}

func (s *screen) grow() {
	for len(s.lines) <= s.row {
		s.lines = append(s.lines, nil)
	}
}

func (s *screen) text() []string {
	var out []string
	for _, l := range s.lines {
		if t := strings.TrimRight(string(l), " "); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// TestTTYScreen follows what a terminal shows while jobs run and end: one
// live line per running job, a summary line in its place when it ends (no
// stale line above it), log lines above the live lines, nothing as wide as
// the terminal, nothing live left after Close.
func TestTTYScreen(t *testing.T) {
	const width = 60
	var scr screen
	v := NewTTY(&scr, width)
	a, b := v.Job("linux/arm64", "lab-2"), v.Job("linux/amd64", "lab-3")
	a.Phase("building")
	a.Log("STEP 2/4: RUN make")
	b.Phase("pulling back")
	b.Watch(func() int64 { return 3 << 20 })
	v.Writer().Write([]byte("farm-build: warning: a log line long enough to be wrapped on a terminal sixty columns wide\n"))
	want := func(lines ...string) {
		t.Helper()
		got := scr.text()
		if len(got) != len(lines) {
			t.Fatalf("screen:\n%s\nwant %d lines like:\n%s", strings.Join(got, "\n"), len(lines), strings.Join(lines, "\n"))
		}
		for i, l := range got {
			if len([]rune(l)) >= width {
				t.Errorf("line %d is %d columns on a %d-column terminal: %q", i, len([]rune(l)), width, l)
			}
			if !regexp.MustCompile(lines[i]).MatchString(l) {
				t.Errorf("line %d: %q, want /%s/", i, l, lines[i])
			}
		}
	}
	want(`^farm-build: warning: a log line long enough to be wrapped$`, `^  on a terminal sixty columns wide$`,
		`^\[linux/arm64@lab-2\] building: step 2/4 \[=====>-+(…|\] \S+)$`, // cut to fit
		`^\[linux/amd64@lab-3\] pulling back: 3MiB, \S+/s \S+$`)
	b.Done("abc in local storage as localhost/app:1-linux-amd64 (build 1.0s, transfer 0.1s)", nil)
	want(`^farm-build: warning`, `^  on a terminal`,
		`^\[linux/amd64@lab-3\] done in \S+: abc in local storage as`, `^  localhost/app:1-linux-amd64 \(build 1.0s, transfer 0.1s\)$`,
		`^\[linux/arm64@lab-2\] building: step 2/4`)
	a.Log("make: *** [all] Error 2")
	a.Done("", errors.New("exit status 2"))
	v.Close()
	want(`^farm-build: warning`, `^  on a terminal`, `^\[linux/amd64@lab-3\] done in`, `^  localhost/app`,
		`^\[linux/arm64@lab-2\] STEP 2/4: RUN make$`, `^\[linux/arm64@lab-2\] make: \*\*\* \[all\] Error 2$`,
		`^\[linux/arm64@lab-2\] FAILED after \S+: exit status 2$`)
}
