//go:build !windows

package stage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// The test binary doubles as a stage: with FARM_STAGE_SIGNAL_TEST set it
// runs Main with an app that waits to be cancelled and then "cleans up"
// for a while, as farm-build stops its remote builds.
func TestMain(m *testing.M) {
	if os.Getenv("FARM_STAGE_SIGNAL_TEST") != "" {
		Main(&cli.App{Name: "sigtest", Action: func(c *cli.Context) error {
			fmt.Fprintln(os.Stderr, "ready")
			<-c.Context.Done()
			time.Sleep(700 * time.Millisecond)
			fmt.Fprintln(os.Stderr, "cleaned up")
			return nil
		}})
	}
	os.Exit(m.Run())
}

func TestSignalsCancelThenExit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		signals   []syscall.Signal
		code      int
		cleanedUp bool
	}{
		{"SIGINT cleans up", []syscall.Signal{syscall.SIGINT}, ExitSIGINT, true},
		{"SIGTERM cleans up", []syscall.Signal{syscall.SIGTERM}, ExitSIGTERM, true},
		{"SIGHUP (terminal closed) cleans up", []syscall.Signal{syscall.SIGHUP}, ExitSIGHUP, true},
		{"a second SIGHUP does not cut the clean-up short", []syscall.Signal{syscall.SIGHUP, syscall.SIGHUP}, ExitSIGHUP, true},
		{"a second SIGINT ends at once", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, ExitSIGINT, false},
		{"SIGINT during a SIGHUP's clean-up ends at once", []syscall.Signal{syscall.SIGHUP, syscall.SIGINT}, ExitSIGINT, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "FARM_STAGE_SIGNAL_TEST=1")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(stderr)
			if !lines.Scan() || lines.Text() != "ready" {
				t.Fatalf("the stage did not start: %q", lines.Text())
			}
			for i, sig := range tc.signals {
				if i > 0 {
					time.Sleep(200 * time.Millisecond) // inside the clean-up
				}
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			}
			var rest strings.Builder
			for lines.Scan() {
				rest.WriteString(lines.Text() + "\n")
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Errorf("exit: %v, want code %d; stderr:\n%s", err, tc.code, rest.String())
			}
			if got := strings.Contains(rest.String(), "cleaned up"); got != tc.cleanedUp {
				t.Errorf("cleaned up: %v, want %v; stderr:\n%s", got, tc.cleanedUp, rest.String())
			}
		})
	}
}
