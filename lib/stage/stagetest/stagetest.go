// Package stagetest runs a stage's cli.App in-process for the commands'
// tests, the way stage.Main runs it, with its output captured.
package stagetest

import (
	"bytes"
	"context"

	"github.com/farm-build/farm/lib/stage"
	"github.com/urfave/cli/v2"
)

// Run runs app with args (args[0] is the program name) and returns the
// exit code stage.Main would exit with, stdout and stderr.
func Run(app *cli.App, args []string) (code int, stdout, stderr string) {
	app.Flags = append(app.Flags, stage.CommonFlags()...)
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	app.ExitErrHandler = func(*cli.Context, error) {} // stage.Report chooses the code
	err := app.RunContext(context.Background(), args)
	return stage.Report(app.Name, err, &errOut), out.String(), errOut.String()
}
