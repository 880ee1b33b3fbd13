// Package stage holds what every farm-* command shares: exit codes, signal
// handling, logging set-up and the common flags. Commands stay thin: flags,
// wiring, exit codes.
package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/farm-build/farm/lib/version"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// Exit codes shared by every stage (documented in docs/records.md).
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitUsage   = 2
	ExitSIGHUP  = 129
	ExitSIGINT  = 130
	ExitSIGTERM = 143
)

// UsageError marks an error in the command line: exit code 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// ErrReported means the failure was already reported (as error records and
// on stderr); the stage only has to exit non-zero.
var ErrReported = errors.New("failed")

// ExitError ends a command with Code and prints nothing more: what went
// wrong was reported already (farm build passes on its pipeline's code).
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// signalCause records which signal cancelled the run, for the exit code.
type signalCause struct{ sig os.Signal }

func (s signalCause) Error() string { return "interrupted by " + s.sig.String() }

// CommonFlags are the flags every stage has.
func CommonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"FARM_LOG_LEVEL"},
			Usage: "log messages at or above this `LEVEL` on stderr: debug, info, warn, error (podman's trace, warning, fatal and panic work too)"},
		&cli.StringFlag{Name: "log-format", Value: "auto", EnvVars: []string{"FARM_LOG_FORMAT"},
			Usage: "stderr log `FORMAT`: text (key=value), json (one object a line), or auto (sentences on a terminal, else text)"},
	}
}

// podmanLevels maps podman's --log-level names that slog lacks to the
// nearest slog level, so a podman user's habit works here too.
var podmanLevels = map[string]slog.Level{
	"trace": slog.LevelDebug, "warning": slog.LevelWarn, "fatal": slog.LevelError, "panic": slog.LevelError,
}

func parseLevel(s string) (slog.Level, error) {
	if l, ok := podmanLevels[strings.ToLower(s)]; ok {
		return l, nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return level, Usagef("--log-level %q: want debug, info, warn or error (or podman's trace, warning, fatal, panic)", s)
	}
	return level, nil
}

// Logger builds the stderr logger from the common flags.
func Logger(c *cli.Context, stderr io.Writer) (*slog.Logger, error) {
	level, err := parseLevel(c.String("log-level"))
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "auto", "":
		if width, ok := TerminalWidth(stderr); ok {
			return slog.New(newSentences(stderr, c.App.Name, level, width)), nil
		}
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, Usagef("--log-format %q: want auto, text or json", c.String("log-format"))
}

// Terminal is a writer that draws on a terminal of its own (the progress
// view's, which prints log lines above its live lines).
type Terminal interface {
	// TerminalWidth is the terminal's width in columns, ok false when the
	// writer is not a terminal after all.
	TerminalWidth() (columns int, ok bool)
}

// TerminalWidth says whether w is a terminal and how wide (0 when unknown).
func TerminalWidth(w io.Writer) (int, bool) {
	switch w := w.(type) {
	case Terminal:
		return w.TerminalWidth()
	case *os.File:
		if !IsTerminal(w) {
			return 0, false
		}
		cols, _, err := term.GetSize(int(w.Fd()))
		if err != nil {
			return 0, true
		}
		return cols, true
	}
	return 0, false
}

// IsTerminal reports whether f is a terminal (for table output and progress).
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Signal returns the signal that cancelled ctx (the context Main gives the
// app), or nil when none did.
func Signal(ctx context.Context) os.Signal {
	var sc signalCause
	if errors.As(context.Cause(ctx), &sc) {
		return sc.sig
	}
	return nil
}

// Main runs app with a context that SIGINT, SIGTERM and SIGHUP cancel, prints the
// error (if any) on stderr prefixed with the stage name and exits with the
// documented code. It never returns.
func Main(app *cli.App) {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "%s version %s\n", c.App.Name, version.String())
	}
	app.Version = version.Version
	app.Flags = append(app.Flags, CommonFlags()...)
	app.EnableBashCompletion = true
	app.HideHelpCommand = true // one command, no subcommands: no "help" command either
	if app.CustomAppHelpTemplate == "" {
		app.CustomAppHelpTemplate = helpTemplate
	}
	app.ErrWriter = os.Stderr
	app.Writer = os.Stdout
	app.ExitErrHandler = func(*cli.Context, error) {} // we choose exit codes below
	keepStdoutForRecords(app)

	// Hidden: --generate-man, --generate-completion SHELL (make man, make completion).
	if out, ok, err := Generate(app, os.Args[1:]); ok {
		if err != nil {
			os.Exit(Report(app.Name, err, os.Stderr))
		}
		fmt.Fprint(os.Stdout, out)
		os.Exit(ExitOK)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	// Notify before the app starts: a signal that came before the
	// goroutine ran would otherwise kill the stage with no clean-up.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go cancelOnSignals(sigs, cancel)

	// The last word on stderr follows --log-format too, so a machine
	// reading JSON logs gets the failure as JSON.
	stderr := io.Writer(os.Stderr)
	before := app.Before
	app.Before = func(c *cli.Context) error {
		if c.String("log-format") == "json" {
			stderr = jsonLines{os.Stderr}
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
	err := app.RunContext(ctx, os.Args)
	var sc signalCause
	if cause := context.Cause(ctx); errors.As(cause, &sc) {
		fmt.Fprintf(stderr, "%s: %s\n", app.Name, cause)
		os.Exit(exitFor(sc.sig))
	}
	os.Exit(Report(app.Name, err, stderr))
}

// jsonLines turns each line written into a JSON log record of level ERROR,
// as slog's JSON handler writes them.
type jsonLines struct{ w io.Writer }

func (j jsonLines) Write(p []byte) (int, error) {
	log := slog.New(slog.NewJSONHandler(j.w, nil))
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		log.Error(line)
	}
	return len(p), nil
}

// keepStdoutForRecords stops urfave/cli from printing "Incorrect Usage" and
// the whole help on stdout (where the next stage expects records) when a
// flag is unknown or a required flag is missing: the error goes to stderr
// with the usual "Try 'NAME --help'" instead. --help itself still prints on
// stdout.
func keepStdoutForRecords(app *cli.App) {
	if app.OnUsageError == nil {
		app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return UsageError{Err: err} }
	}
	if app.Action == nil {
		return
	}
	// Required flags are checked here, after --help and --version, instead.
	var required []cli.Flag
	for _, f := range app.Flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			if f.Required {
				f.Required = false
				required = append(required, f)
			}
		case *cli.StringSliceFlag:
			if f.Required {
				f.Required = false
				required = append(required, f)
			}
		case *cli.IntFlag:
			if f.Required {
				f.Required = false
				required = append(required, f)
			}
		}
	}
	if len(required) == 0 {
		return
	}
	action := app.Action
	app.Action = func(c *cli.Context) error {
		for _, f := range required {
			if !c.IsSet(f.Names()[0]) {
				names := make([]string, len(f.Names()))
				for i, n := range f.Names() {
					names[i] = "--" + n
					if len(n) == 1 {
						names[i] = "-" + n
					}
				}
				return Usagef("%s is required", strings.Join(names, "/"))
			}
		}
		return action(c)
	}
}

// Report prints err for the named stage and returns the exit code for it.
func Report(name string, err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, ErrReported) {
		return ExitFailed
	}
	var ee ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, name+":") {
		msg = name + ": " + msg
	}
	if width, ok := TerminalWidth(stderr); ok {
		msg = strings.Join(Wrap(msg, width), "\n")
	}
	fmt.Fprintln(stderr, msg)
	var ue UsageError
	if errors.As(err, &ue) || isCLIUsage(msg) {
		fmt.Fprintf(stderr, "Try '%s --help' for more information.\n", name)
		return ExitUsage
	}
	return ExitFailed
}

// isCLIUsage recognises urfave/cli's own parse errors (unknown flag, missing
// required flag), which it does not type.
func isCLIUsage(msg string) bool {
	for _, s := range []string{"flag provided but not defined", "Required flag", "flag needs an argument", "invalid value"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// cancelOnSignals cancels the run at the first SIGINT, SIGTERM or SIGHUP,
// so that the stage stops its remote builds and cleans up, and exits at
// once at a second SIGINT or SIGTERM: the user is done waiting. SIGHUP is
// a closed terminal or a lost SSH session; builds left running then would
// hold the nodes for nobody. Further SIGHUPs never cut the clean-up short:
// a closing terminal may send more than one (the kernel, then the shell).
func cancelOnSignals(sigs <-chan os.Signal, cancel context.CancelCauseFunc) {
	cancel(signalCause{<-sigs})
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			os.Exit(exitFor(sig))
		}
	}
}

func exitFor(sig os.Signal) int {
	switch sig {
	case syscall.SIGTERM:
		return ExitSIGTERM
	case syscall.SIGHUP:
		return ExitSIGHUP
	}
	return ExitSIGINT
}
