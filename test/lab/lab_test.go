//go:build lab

// Package lab holds the tests that run farm's real binaries against the lab
// farm (scripts/farm-lab up): real podman services reached over real SSH.
// `make lab-test` builds the binaries and brings the lab up first.
package lab

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farm-build/farm/lib/record"
)

var (
	rootOnce sync.Once
	rootDir  string
	labVars  map[string]string
)

// repo returns the repository root and the lab's variables (lab.env).
func repo(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			panic("not in a git checkout: " + err.Error())
		}
		rootDir = strings.TrimSpace(string(out))
		labVars = readEnv(filepath.Join(labDir(), "lab.env"))
	})
	if labVars == nil {
		t.Fatalf("the lab is not up (no %s/lab.env): run `make lab-up`", labDir())
	}
	for _, bin := range []string{"farm-nodes", "farm-plan", "farm-build", "farm-manifest"} {
		if _, err := os.Stat(filepath.Join(rootDir, "bin", bin)); err != nil {
			t.Fatalf("%v: run `make build` (make lab-test does)", err)
		}
	}
	return rootDir
}

func labDir() string {
	if d := os.Getenv("FARM_LAB_DIR"); d != "" {
		return d
	}
	return "/var/lib/farm-lab"
}

func readEnv(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.HasPrefix(k, "#") {
			vars[strings.TrimPrefix(k, "export ")] = strings.Trim(v, `"'`)
		}
	}
	return vars
}

func labVar(t *testing.T, key string) string {
	t.Helper()
	repo(t)
	v, ok := labVars[key]
	if !ok {
		t.Fatalf("lab.env has no %s", key)
	}
	return v
}

// result of one command.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// run runs a shell pipeline from the repository root with bin/ first on
// PATH, and returns what it printed and its exit code (of the last stage).
func run(t *testing.T, env []string, script string) result {
	t.Helper()
	root := repo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("running %q: %v", script, err)
	}
	t.Logf("$ %s\n(exit %d, %s)\nstderr:\n%s", script, r.code, r.elapsed.Round(time.Millisecond), r.stderr)
	return r
}

// lab runs scripts/farm-lab with the arguments and fails the test if it fails.
func lab(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo(t), "scripts", "farm-lab"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/farm-lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// decode parses a record stream and fails the test on any bad line, and on
// a record after an end record. The end record is not returned: ended
// says whether the stream has one.
func decode(t *testing.T, stream string) []record.Record {
	t.Helper()
	var out []record.Record
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Buffer(nil, record.MaxLine)
	end := false
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		r, err := record.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("bad record %q: %v", sc.Text(), err)
		}
		if end {
			t.Fatalf("a record after the end record: %q", sc.Text())
		}
		if _, end = r.(*record.End); !end {
			out = append(out, r)
		}
	}
	return out
}

// ended reports whether a record stream is complete: its last record is an
// end record.
func ended(stream string) bool {
	lines := strings.Split(strings.TrimSpace(stream), "\n")
	r, err := record.Decode([]byte(lines[len(lines)-1]))
	_, ok := r.(*record.End)
	return err == nil && ok
}

func nodesOf(recs []record.Record) map[string]*record.Node {
	m := map[string]*record.Node{}
	for _, r := range recs {
		if n, ok := r.(*record.Node); ok {
			m[n.Name] = n
		}
	}
	return m
}

func imagesOf(recs []record.Record) map[string]*record.Image {
	m := map[string]*record.Image{}
	for _, r := range recs {
		if i, ok := r.(*record.Image); ok {
			m[i.Platform] = i
		}
	}
	return m
}

func errorsOf(recs []record.Record) []*record.Error {
	var out []*record.Error
	for _, r := range recs {
		if e, ok := r.(*record.Error); ok {
			out = append(out, e)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// podman runs the local podman CLI.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// psMatches lists processes on this machine (where every lab node runs)
// whose command line contains pattern.
func psMatches(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("ps", "-eo", "pid,args").Output()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	var hits []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, pattern) && !strings.Contains(line, "ps -eo") {
			hits = append(hits, strings.TrimSpace(line))
		}
	}
	return hits
}
