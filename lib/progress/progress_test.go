package progress

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseStep(t *testing.T) {
	tests := []struct {
		line string
		n, m int
		ok   bool
	}{
		{"STEP 3/7: RUN make", 3, 7, true},
		{"STEP 1/1: FROM x", 1, 1, true},
		{"--> Using cache abc", 0, 0, false},
		{"echo STEP 1/2: inside a log", 0, 0, false},
	}
	for _, tc := range tests {
		n, m, ok := ParseStep(tc.line)
		if n != tc.n || m != tc.m || ok != tc.ok {
			t.Errorf("%q: got %d %d %v", tc.line, n, m, ok)
		}
	}
}

func TestPlainPrefixesEveryLineAndNeverInterleaves(t *testing.T) {
	var buf bytes.Buffer
	v := NewPlain(&buf)
	var wg sync.WaitGroup
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		j := v.Job(p, "lab-1")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				j.Log("STEP 1/2: RUN something long enough to be torn if writes raced")
			}
			j.Done("abc in local storage", nil)
		}()
	}
	wg.Wait()
	j := v.Job("linux/s390x", "lab-2")
	j.Done("", errors.New("exit status 3"))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 403 {
		t.Fatalf("got %d lines", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "[linux/amd64@lab-1] ") && !strings.HasPrefix(l, "[linux/arm64@lab-1] ") && !strings.HasPrefix(l, "[linux/s390x@lab-2] ") {
			t.Fatalf("unprefixed or torn line %q", l)
		}
	}
	if lines[402] != "[linux/s390x@lab-2] failed: exit status 3" {
		t.Errorf("last line %q", lines[402])
	}
}

func TestTTYShowsStepsAndTheTailOfAFailure(t *testing.T) {
	var buf syncBuffer
	v := NewTTY(&buf, 80)
	ok := v.Job("linux/amd64", "lab-1")
	bad := v.Job("linux/arm64", "lab-2")
	ok.Phase("building")
	ok.Log("STEP 2/3: RUN true")
	bad.Log("STEP 1/1: RUN false")
	bad.Log("the last words of a failing step")
	ok.Done("abc in local storage", nil)
	bad.Done("", errors.New("exit status 1"))
	v.Close()
	out := buf.String()
	for _, want := range []string{"[linux/amd64@lab-1]", "done in ", ": abc in local storage", "the last words of a failing step", "FAILED after ", ": exit status 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty output lacks %q:\n%s", want, out)
		}
	}
}

func TestNewModes(t *testing.T) {
	if _, ok := mustNew(t, "auto", false).(*Plain); !ok {
		t.Error("auto without a terminal must be plain")
	}
	if _, ok := mustNew(t, "auto", true).(*TTY); !ok {
		t.Error("auto on a terminal must be tty")
	}
	if _, err := New("fancy", &bytes.Buffer{}, true, 80); err == nil {
		t.Error("unknown mode accepted")
	}
}

func mustNew(t *testing.T, mode string, term bool) View {
	v, err := New(mode, &bytes.Buffer{}, term, 80)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTTYStepStormDoesNotHang drives STEP lines through the tty view from
// several goroutines while the view redraws. (With mpb, Log held the job's
// lock while calling bar methods that waited for the render goroutine,
// whose decorators took the same lock: the view hung within seconds.)
func TestTTYStepStormDoesNotHang(t *testing.T) {
	v := NewTTY(&syncBuffer{}, 80)
	jobs := []Job{v.Job("linux/amd64", "lab-1"), v.Job("linux/arm64", "lab-2")}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var wg sync.WaitGroup
		for _, j := range jobs {
			j.Phase("building")
			for g := 0; g < 3; g++ {
				wg.Add(1)
				go func(j Job) {
					defer wg.Done()
					deadline := time.Now().Add(3 * time.Second)
					for i := 0; time.Now().Before(deadline); i++ {
						j.Log(fmt.Sprintf("STEP %d/50: RUN step", i%50+1))
						j.Log("output of the step")
					}
				}(j)
			}
		}
		wg.Wait()
		for _, j := range jobs {
			j.Done("abc in local storage", nil)
		}
		v.Close()
	}()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("the tty view hung: Log, the bar and its decorators deadlocked")
	}
}
