// Package pipeline is the one command for people, farm build: it runs
// farm-nodes | farm-plan | farm-build | farm-manifest with each of its flags
// handed to the stage that owns it, lets any stage be replaced by a shell
// command, and prints the pipeline it runs, so a person can graduate to
// the stages.
package pipeline

import (
	"fmt"
	"regexp"
	"strings"
)

// The stages, in pipeline order.
const (
	Nodes    = "farm-nodes"
	Plan     = "farm-plan"
	Build    = "farm-build"
	Manifest = "farm-manifest"
	// Timeline is not in Order: farm build --timeline FILE puts it between
	// farm-build and farm-manifest.
	Timeline = "farm-timeline"
)

// Order is the stages in pipeline order.
var Order = []string{Nodes, Plan, Build, Manifest}

// Stage is one command of the pipeline: a farm stage with its arguments, or
// a shell command standing in for it.
type Stage struct {
	Name  string   // the farm stage this is or replaces
	Args  []string // the stage's arguments (when Shell is empty)
	Shell string   // a shell command replacing the stage (--plan-with ...)
}

// String is the stage as a person would type it.
func (s Stage) String() string {
	if s.Shell != "" {
		return s.Shell
	}
	words := []string{s.Name}
	for _, a := range s.Args {
		words = append(words, Quote(a))
	}
	return strings.Join(words, " ")
}

// Pipeline is the stages in order; stdout of each feeds the next.
type Pipeline []Stage

// String is the pipeline as one shell command line.
func (p Pipeline) String() string {
	parts := make([]string, len(p))
	for i, s := range p {
		parts[i] = s.String()
	}
	return strings.Join(parts, " | ")
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// Quote makes s one word for a POSIX shell.
func Quote(s string) string {
	if plainWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Exit is the pipeline's exit code from its stages' codes, as a shell with
// `set -o pipefail` has it: the last stage's that is not zero, else zero.
// The last stage sees every failure upstream as an error record and fails
// too, so this is mostly the last stage's code; an interrupt gives 130 or
// 143 everywhere.
func Exit(codes []int) int {
	for i := len(codes) - 1; i >= 0; i-- {
		if codes[i] != 0 {
			return codes[i]
		}
	}
	return 0
}

// Subcommand takes the command word off args (os.Args): farm has one
// command, build, and its flags follow it. It returns the arguments to
// parse (the program name, then the rest) and the word ("" when args
// start with an option, such as --help; farm alone gets --help).
func Subcommand(args []string) ([]string, string) {
	if len(args) < 2 {
		return append(args, "--help"), "" // farm alone: what it does
	}
	if strings.HasPrefix(args[1], "-") {
		return args, ""
	}
	return append([]string{args[0]}, args[2:]...), args[1]
}

// CheckSubcommand says what is wrong with the command word, if anything.
func CheckSubcommand(word string) error {
	switch word {
	case "build":
		return nil
	case "":
		return fmt.Errorf("no command: farm has one, farm build [options] [CONTEXT]")
	}
	return fmt.Errorf("unknown command %q: farm has one, farm build [options] [CONTEXT]", word)
}
