package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/farm-build/farm/lib/stage"
	"github.com/urfave/cli/v2"
)

// Options say where the stages are and where the pipeline's output goes.
type Options struct {
	// BinDir holds the farm-* binaries (those beside farm itself); it also
	// comes first on each stage's PATH, so a replacing command finds them.
	// Empty: they are looked up on PATH.
	BinDir string
	// Stdout gets the last stage's records; every stage shares Stderr.
	Stdout, Stderr io.Writer
}

// Run runs p, each stage's stdout into the next one's stdin, the first
// reading nothing, and returns the stages' exit codes. The stages run in a
// process group of their own: when ctx ends (Ctrl-C reaches farm), every
// stage gets the signal once (stage.Signal(ctx), else SIGTERM), cleans up
// as it does alone, and Run waits for all of them.
func Run(ctx context.Context, p Pipeline, opts Options) ([]int, error) {
	cmds, err := commands(p, opts)
	if err != nil {
		return nil, err
	}
	var closeAfterStart []io.Closer
	for i := 0; i < len(cmds)-1; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmds[i].Stdout, cmds[i+1].Stdin = w, r
		closeAfterStart = append(closeAfterStart, r, w)
	}
	cmds[len(cmds)-1].Stdout = opts.Stdout
	group := newGroup()
	var started []*exec.Cmd
	for i, cmd := range cmds {
		group.join(cmd)
		if err := cmd.Start(); err != nil {
			group.signal(started, syscall.SIGTERM)
			closeAll(closeAfterStart)
			waitAll(started)
			return nil, fmt.Errorf("starting %s: %w", p[i].Name, err)
		}
		group.started(cmd)
		started = append(started, cmd)
	}
	closeAll(closeAfterStart)

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			sig := stage.Signal(ctx)
			if sig == nil {
				sig = syscall.SIGTERM
			}
			group.signal(started, sig)
		case <-done:
		}
	}()
	return waitAll(started), nil
}

func commands(p Pipeline, opts Options) ([]*exec.Cmd, error) {
	stderr := opts.Stderr
	if _, ok := stderr.(*os.File); !ok && stderr != nil {
		stderr = &syncWriter{w: stderr} // every stage writes to it at once
	}
	env := os.Environ()
	if opts.BinDir != "" {
		env = append(env, "PATH="+opts.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	var cmds []*exec.Cmd
	for _, s := range p {
		var cmd *exec.Cmd
		if s.Shell != "" {
			cmd = exec.Command("/bin/sh", "-c", s.Shell)
		} else {
			path, err := lookStage(s.Name, opts.BinDir)
			if err != nil {
				return nil, err
			}
			cmd = exec.Command(path, s.Args...)
		}
		cmd.Env, cmd.Stderr = env, stderr
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// lookStage finds a stage beside farm, else on PATH.
func lookStage(name, binDir string) (string, error) {
	if binDir != "" {
		path := filepath.Join(binDir, name)
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not beside farm nor on PATH: install all of farm's commands (make install)", name)
	}
	return path, nil
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}

// waitAll waits for every command and returns their exit codes; a stage
// killed by a signal has 128+signal, as in a shell.
func waitAll(cmds []*exec.Cmd) []int {
	codes := make([]int, len(cmds))
	for i, cmd := range cmds {
		cmd.Wait()
		codes[i] = exitCode(cmd.ProcessState)
	}
	return codes
}

// Command is farm build's action: word is the command word Subcommand took
// off the arguments. It prints the pipeline (--print) or runs it and ends
// with its exit code.
func Command(c *cli.Context, word string) error {
	if err := CheckSubcommand(word); err != nil {
		return stage.UsageError{Err: err}
	}
	p, err := FromFlags(c)
	if err != nil {
		return stage.UsageError{Err: err}
	}
	if c.Bool("print") {
		_, err := fmt.Fprintln(c.App.Writer, p)
		return err
	}
	opts := Options{Stdout: c.App.Writer, Stderr: c.App.ErrWriter}
	if exe, err := os.Executable(); err == nil {
		opts.BinDir = filepath.Dir(exe)
	}
	codes, err := Run(c.Context, p, opts)
	if err != nil {
		return err
	}
	if code := Exit(codes); code != 0 {
		return stage.ExitError{Code: code}
	}
	return nil
}
