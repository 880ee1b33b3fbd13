//go:build lab

package lab

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// What a person sees: farm build run in a tmux pane of a fixed size, typed
// with send-keys and read back with capture-pane, as a terminal shows it.

const (
	paneWidth  = 100
	paneHeight = 40
)

// pane is a shell in a tmux pane of its own tmux server.
type pane struct {
	t      *testing.T
	socket string
	typed  []string // command lines typed: the terminal echoes them
}

// newPane starts bash in a paneWidth x paneHeight pane, in the repository,
// with bin/ first on PATH. tmux comes from Debian; the test installs it
// when missing.
func newPane(t *testing.T) *pane {
	t.Helper()
	root := repo(t)
	need(t, "tmux", "tmux")
	p := &pane{t: t, socket: "farm-test-" + relNonce()}
	shell := fmt.Sprintf("cd %s && env PATH=%s:$PATH PS1='$ ' bash --norc --noprofile", root, filepath.Join(root, "bin"))
	p.tmux("new-session", "-d", "-s", "farm", "-x", fmt.Sprint(paneWidth), "-y", fmt.Sprint(paneHeight), shell)
	t.Cleanup(func() {
		// A run still going (the test failed) is interrupted as a person
		// would, so it stops its remote builds, before the pane goes.
		if out, _ := exec.Command("tmux", "-L", p.socket, "capture-pane", "-p", "-t", "farm").Output(); len(p.typed) > 0 && !exited(string(out)) {
			exec.Command("tmux", "-L", p.socket, "send-keys", "-t", "farm", "C-c").Run()
			for i := 0; i < 300; i++ {
				if out, _ := exec.Command("tmux", "-L", p.socket, "capture-pane", "-p", "-t", "farm").Output(); exited(string(out)) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		exec.Command("tmux", "-L", p.socket, "kill-server").Run()
	})
	p.until("the prompt", regexp.MustCompile(`(?m)^\$ `).MatchString, 30*time.Second) // the shell reads what is typed
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", p.socket}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// typeLine types a command line and Enter.
func (p *pane) typeLine(line string) {
	p.typed = append(p.typed, line)
	p.tmux("send-keys", "-t", "farm", line, "Enter")
}

// screen is the pane and its scrollback, lines that wrapped joined again
// (-J), so a line wider than the pane shows as one long line.
func (p *pane) screen() string {
	return strings.TrimRight(p.tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", "farm"), "\n")
}

// exited says the typed command ended: it prints `EXIT=STATUS` last.
func exited(s string) bool { return regexp.MustCompile(`(?m)^EXIT=\d+$`).MatchString(s) }

// until captures the screen every 200 ms, checking each capture
// (checkScreen), until done says one is what the test waits for (what, in
// the failure); it returns that one.
func (p *pane) until(what string, done func(string) bool, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := p.screen()
		p.checkScreen(s)
		if done(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not on the screen after %s:\n%s", what, timeout, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A live line of the progress view: a job's phase while it runs.
var liveLine = regexp.MustCompile(`^(\[[^]]+@[^]]+\]) (connecting|uploading context|building|pulling back|pushing)\b`)

// checkScreen fails the test for what a terminal must never show: a line
// wider than the pane, a record as raw JSON, or a job with two live lines
// (a stale one left above the other).
func (p *pane) checkScreen(s string) {
	t := p.t
	t.Helper()
	live := map[string]int{}
	for _, line := range strings.Split(s, "\n") {
		if len(p.typed) > 0 && strings.HasSuffix(line, p.typed[len(p.typed)-1]) {
			continue // the command typed, as long as it is
		}
		if n := len([]rune(line)); n > paneWidth {
			t.Errorf("a line of %d columns on a %d-column terminal:\n%s\nscreen:\n%s", n, paneWidth, line, s)
		}
		if strings.Contains(line, `{"v":1`) || strings.Contains(line, `"kind":`) {
			t.Errorf("raw JSON on the terminal: %s\nscreen:\n%s", line, s)
		}
		if m := liveLine.FindStringSubmatch(line); m != nil {
			live[m[1]]++
		}
	}
	for job, n := range live {
		if n > 1 {
			t.Errorf("%s has %d live lines (a stale one):\n%s", job, n, s)
		}
	}
}

// finalScreen checks what stays once the command ended: no live line at
// all, and exactly one summary line per job ("done in" or "FAILED after").
func (p *pane) finalScreen(s, summary string, jobs int) {
	t := p.t
	t.Helper()
	t.Logf("the terminal (%dx%d) at the end:\n%s", paneWidth, paneHeight, s)
	p.checkScreen(s)
	summaries := map[string]int{}
	for _, line := range strings.Split(s, "\n") {
		if liveLine.MatchString(line) {
			t.Errorf("a live line left after the run: %s\nscreen:\n%s", line, s)
		}
		if m := regexp.MustCompile(`^(\[[^]]+\]) ` + summary + ` `).FindStringSubmatch(line); m != nil {
			summaries[m[1]]++
		}
	}
	if len(summaries) != jobs {
		t.Errorf("summary lines %q for %v, want one for each of %d jobs:\n%s", summary, summaries, jobs, s)
	}
	for job, n := range summaries {
		if n != 1 {
			t.Errorf("%s has %d summary lines", job, n)
		}
	}
}

func TestTmuxGoodRun(t *testing.T) {
	p := newPane(t)
	tag := "localhost/tmux-" + relNonce() + ":1"
	relRemoveLocal(t, tag, tag+"-linux-amd64", tag+"-linux-arm64")
	p.typeLine("farm build --farm lab --platforms linux/amd64,linux/arm64 -t " + tag + " --no-cache --cleanup examples/hello; echo EXIT=$?")
	sawLive := false
	s := p.until("the end of the run", func(s string) bool {
		sawLive = sawLive || regexp.MustCompile(`(?m)^\[linux/\w+@lab-\d\] (building: step \d/\d \[|pulling back: )`).MatchString(s)
		return exited(s)
	}, 5*time.Minute)
	if !strings.Contains(s, "\nEXIT=0") {
		t.Fatalf("the run failed:\n%s", s)
	}
	if !sawLive {
		t.Errorf("never saw a live line with a build step or the bytes pulled back")
	}
	p.finalScreen(s, "done in", 2)
	// farm-manifest's list for people ends the run.
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tag) + ` sha256:[0-9a-f]{12}, 2 platforms$`).MatchString(s) {
		t.Errorf("no list for people:\n%s", s)
	}
}

func TestTmuxFailedBuild(t *testing.T) {
	p := newPane(t)
	ctx := relContext(t, map[string]string{"Containerfile": "ARG TARGETARCH\nFROM localhost/busybox:${TARGETARCH}\n" +
		"RUN echo the step that fails says why && false\n"})
	p.typeLine(fmt.Sprintf("farm build --farm lab --platforms linux/amd64,linux/arm64 -t localhost/tmux-fail:%s %s; echo EXIT=$?", relNonce(), ctx))
	s := p.until("the end of the run", exited, 5*time.Minute)
	if !strings.Contains(s, "\nEXIT=1") {
		t.Fatalf("want exit 1:\n%s", s)
	}
	p.finalScreen(s, "FAILED after", 2)
	if !strings.Contains(s, "] the step that fails says why") {
		t.Errorf("the failed step's output is not shown:\n%s", s)
	}
	if !strings.Contains(s, "failed: linux/arm64 on ") {
		t.Errorf("farm-manifest does not say what failed:\n%s", s)
	}
}

func TestTmuxInterrupt(t *testing.T) {
	p := newPane(t)
	sleep := fmt.Sprint(400 + time.Now().UnixNano()%100)
	p.typeLine(fmt.Sprintf("farm build --farm lab --platforms linux/amd64,linux/arm64 -t localhost/tmux-int:%s --no-cache --build-arg SLEEP=%s test/lab/testdata/slow; echo EXIT=$?", relNonce(), sleep))
	// Both jobs at their long step (the last): their live lines say so.
	last := regexp.MustCompile(`(?m)^\[[^]]+\] building: step (\d+)/(\d+) `)
	p.until("both jobs at their last step", func(s string) bool {
		atLast := 0
		for _, m := range last.FindAllStringSubmatch(s, -1) {
			if m[1] == m[2] {
				atLast++
			}
		}
		return atLast == 2
	}, 3*time.Minute)
	p.tmux("send-keys", "-t", "farm", "C-c")
	s := p.until("the end of the run", exited, 2*time.Minute)
	if !strings.Contains(s, "\nEXIT=130") {
		t.Fatalf("want exit 130 after Ctrl-C:\n%s", s)
	}
	p.finalScreen(s, "FAILED after", 2)
	if !strings.Contains(s, "interrupted") {
		t.Errorf("the screen does not say the run was interrupted:\n%s", s)
	}
	noProcess(t, "sleep "+sleep, 10*time.Second)
}
