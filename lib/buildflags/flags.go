// Package buildflags gives farm-build the flags of `podman --remote build`
// (podman 4.9) with podman's names, defaults and meaning, and turns them
// into the entities.BuildOptions podman's own client would make from the
// same command line.
//
// The flags are not copied: they are buildah's flag sets as podman 4.9
// defines them (cmd/podman/common.DefineBuildFlags), with their defaults
// from this machine's containers.conf as podman-remote takes them, offered
// to urfave/cli under the same names. Values are parsed by the same pflag
// values and buildah parsers podman uses, so a bad value is refused with
// podman's wording, before anything is uploaded.
//
// Each flag has a Status in Table: sent to the node as podman-remote sends
// it, handled by farm itself, accepted without effect as with podman-remote,
// or refused with the reason.
package buildflags

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	buildahCLI "github.com/containers/buildah/pkg/cli"
	"github.com/spf13/pflag"
	"github.com/urfave/cli/v2"
)

// Kind is what farm-build does with one of podman build's flags.
type Kind string

const (
	// Sent: the value travels in the build request as podman-remote sends it.
	Sent Kind = "sent"
	// Farm: farm-build handles it itself, with podman's meaning (-t, -f...).
	Farm Kind = "farm"
	// Own: farm-build has a flag of that name with a meaning of its own.
	Own Kind = "farm's own meaning"
	// NoEffect: accepted and ignored, as podman-remote 4.9 ignores it.
	NoEffect Kind = "no effect"
	// Refused: an error before anything is uploaded, saying why.
	Refused Kind = "refused"
)

// Status is a flag's kind and, for all but Sent, why.
type Status struct {
	Kind Kind
	Why  string
}

// wrapper holds the parsed values, as podman's common.BuildFlagsWrapper.
type wrapper struct {
	buildahCLI.BudResults
	buildahCLI.LayerResults
	buildahCLI.FromAndBudResults
	buildahCLI.NameSpaceResults
	buildahCLI.UserNSResults
	SquashAll bool
}

// Set is podman build's flag set, ready to take the values farm-build's
// command line gave.
type Set struct {
	fs *pflag.FlagSet
	w  *wrapper
}

// New defines podman 4.9's build flags as `podman --remote build` does,
// defaults read from containers.conf as podman reads them.
func New() (*Set, error) {
	w := &wrapper{}
	fs := pflag.NewFlagSet("podman build", pflag.ContinueOnError)
	fs.Bool("load", false, "buildx --load")
	fs.String("progress", "auto", "buildx --progress")
	fs.BoolVar(&w.SquashAll, "squash-all", false, "Squash all layers into a single layer")

	bud := buildahCLI.GetBudFlags(&w.BudResults)
	pull := bud.Lookup("pull")
	pull.DefValue = "missing"
	if err := pull.Value.Set("missing"); err != nil {
		return nil, err
	}
	pull.Usage = `Pull image policy ("always/true"|"missing"|"never/false"|"newer")`
	fs.AddFlagSet(&bud)

	layer := buildahCLI.GetLayerFlags(&w.LayerResults)
	// podman's default, not buildah's: layers unless BUILDAH_LAYERS says no.
	layers := "true"
	if v := os.Getenv("BUILDAH_LAYERS"); strings.EqualFold(v, "false") || v == "0" {
		layers = "false"
	}
	w.Layers = layers == "true"
	if err := layer.Lookup("layers").Value.Set(layers); err != nil {
		return nil, err
	}
	layer.Lookup("layers").DefValue = layers
	if err := layer.Lookup("force-rm").Value.Set("true"); err != nil {
		return nil, err
	}
	layer.Lookup("force-rm").DefValue = "true"
	fs.AddFlagSet(&layer)

	fromAndBud, err := buildahCLI.GetFromAndBudFlags(&w.FromAndBudResults, &w.UserNSResults, &w.NameSpaceResults)
	if err != nil {
		return nil, fmt.Errorf("setting up podman's build flags: %w", err)
	}
	fs.AddFlagSet(&fromAndBud)
	fs.SetNormalizeFunc(buildahCLI.AliasFlags)
	return &Set{fs: fs, w: w}, nil
}

// Names lists every flag of the set, sorted.
func (s *Set) Names() []string {
	var names []string
	s.fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

// CLIFlags returns urfave/cli flags for every podman flag farm-build does
// not define itself (Kind Farm or Own): the same names, shorthands and
// help; refused ones hidden.
func (s *Set) CLIFlags() []cli.Flag {
	var out []cli.Flag
	s.fs.VisitAll(func(f *pflag.Flag) {
		st := Table[f.Name]
		if st.Kind == Farm || st.Kind == Own {
			return
		}
		out = append(out, cliFlag(f, f.Hidden || st.Kind == Refused || st.Kind == NoEffect))
	})
	return out
}

func cliFlag(f *pflag.Flag, hidden bool) cli.Flag {
	var aliases []string
	// -v is every stage's --version and -c farm-build's --connection (as
	// podman's -c): --volume and --cpu-shares go without their shorthands.
	if f.Shorthand != "" && f.Shorthand != "v" && f.Shorthand != "c" {
		aliases = []string{f.Shorthand}
	}
	if f.Name == "network" {
		aliases = append(aliases, "net")
	}
	usage := f.Usage
	if f.Value.Type() != "bool" && !strings.Contains(usage, "`") {
		// urfave/cli names the value after the first `quoted` word.
		usage += " (`" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")) + "`)"
	}
	switch f.Value.Type() {
	case "bool":
		def, _ := strconv.ParseBool(f.DefValue)
		return &cli.BoolFlag{Name: f.Name, Aliases: aliases, Usage: usage, Value: def, Hidden: hidden}
	case "stringSlice", "stringArray":
		def := "none"
		if f.DefValue != "[]" {
			def = strings.Trim(f.DefValue, "[]")
		}
		return &cli.StringSliceFlag{Name: f.Name, Aliases: aliases, Usage: usage + "; repeatable (default: " + def + ")", Hidden: hidden}
	}
	if f.DefValue == "" {
		usage += " (default: none)"
	}
	return &cli.StringFlag{Name: f.Name, Aliases: aliases, Usage: usage, Value: f.DefValue, Hidden: hidden}
}

// Load copies the values given on farm-build's command line into the set,
// parsing each as podman does. Flags farm-build handles itself are left
// alone.
func (s *Set) Load(c *cli.Context) error {
	var err error
	s.fs.VisitAll(func(f *pflag.Flag) {
		st := Table[f.Name]
		if err != nil || st.Kind == Farm || st.Kind == Own || !c.IsSet(f.Name) {
			return
		}
		if st.Kind == Refused {
			err = fmt.Errorf("--%s is not supported by farm-build: %s", f.Name, st.Why)
			return
		}
		var values []string
		switch f.Value.Type() {
		case "bool":
			values = []string{strconv.FormatBool(c.Bool(f.Name))}
		case "stringSlice", "stringArray":
			values = c.StringSlice(f.Name)
		default:
			values = []string{c.String(f.Name)}
		}
		for _, v := range values {
			if serr := s.fs.Set(f.Name, v); serr != nil {
				// pflag's own wording, as podman prints it.
				err = fmt.Errorf("invalid argument %q for \"--%s\" flag: %w", v, f.Name, serr)
				return
			}
		}
	})
	return err
}

// Set gives a flag a value as if it were on the command line (farm-build's
// own flags that podman also has: --file, --tag...).
func (s *Set) Set(name, value string) error { return s.fs.Set(name, value) }

// Changed reports whether the flag was given.
func (s *Set) Changed(name string) bool { return s.fs.Changed(name) }

func (s *Set) flag(name string) *pflag.Flag { return s.fs.Lookup(name) }
