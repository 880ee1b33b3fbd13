package stage

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Hidden options every stage answers before parsing anything else (so
// farm-build's required -t does not get in the way). `make man` and
// `make completion` use them, so the installed pages and completions are
// generated from the very flags the binary parses.
const (
	GenerateManFlag        = "--generate-man"        // the man page (roff) on stdout
	GenerateCompletionFlag = "--generate-completion" // SHELL: bash, zsh or fish
)

// Generate handles the hidden generator options: it returns the text to
// print and true when args (without the program name) ask for one.
func Generate(app *cli.App, args []string) (string, bool, error) {
	if len(args) == 0 {
		return "", false, nil
	}
	switch a := args[0]; {
	case a == GenerateManFlag:
		out, err := Man(app)
		return out, true, err
	case a == GenerateCompletionFlag || strings.HasPrefix(a, GenerateCompletionFlag+"="):
		shell, ok := strings.CutPrefix(a, GenerateCompletionFlag+"=")
		if !ok && len(args) > 1 {
			shell = args[1]
		}
		out, err := Completion(app, shell)
		return out, true, err
	}
	return "", false, nil
}

// Value hints say how to complete a flag's value. Keys are "STAGE/flag" or,
// for every stage, "flag"; "STAGE/ARGS" is for the arguments. A hint is a
// list of words, or one of: files, dirs, connections, farms; for ARGS also
// none (no arguments) or name (one, that no shell can guess). Hints naming
// flags a stage does not have are ignored, and a value flag without a hint
// completes file names, as the shell would anyway.
var valueHints = map[string]string{
	"log-level":                       "words:debug info warn error",
	"log-format":                      "words:auto text json",
	"node":                            "connections",
	"farm":                            "farms",
	"file":                            "files",
	"authfile":                        "files",
	"farm-nodes/format":               "words:json table wide",
	"farm-plan/emulation":             "words:auto never",
	"farm-plan/platforms":             "words:linux/amd64 linux/arm64 linux/arm/v7 linux/arm/v6 linux/386 linux/ppc64le linux/s390x linux/riscv64",
	"farm-build/format":               "words:oci docker",
	"farm-build/pull":                 "words:missing always never newer",
	"farm-build/progress":             "words:auto tty plain",
	"farm-build/archive-format":       "words:docker-archive oci-archive",
	"farm-build/transfer":             "words:auto registry archive",
	"farm-build/transfer-compression": "words:auto gzip zstd",
	"farm-build/ARGS":                 "dirs",
	"farm-manifest/format":            "words:oci v2s2",
	"farm-manifest/ARGS":              "name",
	"farm-nodes/ARGS":                 "none",
	"farm/platforms":                  "words:linux/amd64 linux/arm64 linux/arm/v7 linux/arm/v6 linux/386 linux/ppc64le linux/s390x linux/riscv64",
	"farm/emulation":                  "words:auto never",
	"farm/format":                     "words:oci docker",
	"farm/pull":                       "words:missing always never newer",
	"farm/progress":                   "words:auto tty plain",
	"farm/archive-format":             "words:docker-archive oci-archive",
	"farm/transfer":                   "words:auto registry archive",
	"farm/transfer-compression":       "words:auto gzip zstd",
	"farm/ARGS":                       "dirs",
	"farm-plan/ARGS":                  "none",
}

// Shell commands that list connections and farms, as podman knows them
// (podman farm needs podman >= 4.9; before that it prints nothing).
const (
	listConnections = `podman system connection list --format '{{.Name}}' 2>/dev/null`
	listFarms       = `podman farm list --format '{{.Name}}' 2>/dev/null`
)

type complFlag struct {
	long, short []string // without dashes
	value       bool     // takes a value
	repeat      bool     // may be given more than once
	usage       string
	hint        string // "" when the value has no hint
}

func hintFor(app, name string) string {
	if h, ok := valueHints[app+"/"+name]; ok {
		return h
	}
	return valueHints[name]
}

func complFlags(app *cli.App) []complFlag {
	app.Setup()
	var out []complFlag
	for _, f := range app.VisibleFlags() {
		var cf complFlag
		for _, n := range f.Names() {
			if len(n) == 1 {
				cf.short = append(cf.short, n)
			} else {
				cf.long = append(cf.long, n)
			}
		}
		if d, ok := f.(cli.DocGenerationFlag); ok {
			cf.value = d.TakesValue()
			cf.usage = shortUsage(d.GetUsage())
		}
		if s, ok := f.(cli.DocGenerationSliceFlag); ok {
			cf.repeat = s.IsSliceFlag()
		}
		if cf.value && len(cf.long) > 0 {
			cf.hint = hintFor(app.Name, cf.long[0])
		}
		out = append(out, cf)
	}
	return out
}

// shortUsage is the first clause of a flag's usage, for completion menus.
func shortUsage(s string) string {
	s = strings.ReplaceAll(s, "`", "") // urfave/cli's placeholder quotes
	for _, sep := range []string{"; ", " (default: "} {
		if i := strings.Index(s, sep); i > 0 {
			s = s[:i]
		}
	}
	if r := []rune(s); len(r) > 70 {
		s = string(r[:67]) + "..."
	}
	return s
}

// Completion renders the completion script for shell: bash, zsh or fish.
func Completion(app *cli.App, shell string) (string, error) {
	flags := complFlags(app)
	args := hintFor(app.Name, "ARGS")
	switch shell {
	case "bash":
		return bashCompletion(app.Name, flags, args), nil
	case "zsh":
		return zshCompletion(app.Name, flags, args), nil
	case "fish":
		return fishCompletion(app.Name, flags, args), nil
	}
	return "", Usagef("%s %q: want bash, zsh or fish", GenerateCompletionFlag, shell)
}

func header(comment, name, shell string) string {
	return fmt.Sprintf("%s %s completion for %s.\n%s Generated by `%s %s %s` from its flags (make completion); do not edit.\n",
		comment, shell, name, comment, name, GenerateCompletionFlag, shell)
}

func funcName(name string) string { return "_" + strings.ReplaceAll(name, "-", "_") }

func bashCompletion(name string, flags []complFlag, args string) string {
	var b strings.Builder
	b.WriteString(header("#", name, "bash"))
	fn := funcName(name)
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString(`	local cur=${COMP_WORDS[COMP_CWORD]} prev=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
	# --flag=value: bash splits the word at "=".
	if [[ $cur == = ]]; then
		cur=
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD-2]}
	fi
	COMPREPLY=()
	case $prev in
`)
	var all []string
	for _, f := range flags {
		var pats []string
		for _, l := range f.long {
			pats = append(pats, "--"+l)
			all = append(all, "--"+l)
		}
		for _, s := range f.short {
			pats = append(pats, "-"+s)
			all = append(all, "-"+s)
		}
		if !f.value {
			continue
		}
		fmt.Fprintf(&b, "\t%s)\n\t\t%s\n\t\treturn ;;\n", strings.Join(pats, "|"), bashValue(f.hint))
	}
	b.WriteString("\tesac\n")
	fmt.Fprintf(&b, "\tif [[ $cur == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(all, " "))
	switch args {
	case "none", "name":
		b.WriteString("\t# no file arguments: only options\n\tcompopt +o default 2>/dev/null\n")
		fmt.Fprintf(&b, "\tCOMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n", strings.Join(all, " "))
	case "dirs":
		b.WriteString("\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n")
	}
	b.WriteString("}\n")
	// -o default: file names when the function has nothing to offer.
	fmt.Fprintf(&b, "complete -o default -F %s %s\n", fn, name)
	return b.String()
}

func bashValue(hint string) string {
	kind, words, _ := strings.Cut(hint, ":")
	switch kind {
	case "words":
		return fmt.Sprintf("COMPREPLY=($(compgen -W '%s' -- \"$cur\"))", words)
	case "connections":
		return fmt.Sprintf("COMPREPLY=($(compgen -W \"$(%s)\" -- \"$cur\"))", listConnections)
	case "farms":
		return fmt.Sprintf("COMPREPLY=($(compgen -W \"$(%s)\" -- \"$cur\"))", listFarms)
	case "dirs":
		return `COMPREPLY=($(compgen -d -- "$cur"))`
	case "files":
		return ": # file names (complete -o default)"
	}
	return "compopt +o default 2>/dev/null # nothing to suggest"
}

func zshCompletion(name string, flags []complFlag, args string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n", name)
	b.WriteString(header("#", name, "zsh"))
	fn := "_" + name
	fmt.Fprintf(&b, "\n%s() {\n\tlocal -a specs\n\tspecs=(\n", fn)
	for _, f := range flags {
		var names []string
		for _, s := range f.short {
			names = append(names, "-"+s)
		}
		for _, l := range f.long {
			names = append(names, "--"+l)
		}
		excl := ""
		if !f.repeat {
			excl = "(" + strings.Join(names, " ") + ")"
		}
		star := ""
		if f.repeat {
			star = "*"
		}
		value := ""
		if f.value {
			value = ":" + zshEscape(strings.TrimLeft(names[len(names)-1], "-")) + ":" + zshValue(fn, f.hint)
		}
		desc := "[" + zshEscape(f.usage) + "]"
		for _, n := range names {
			opt := n
			if f.value {
				if len(n) == 2 {
					opt += "+"
				} else {
					opt += "="
				}
			}
			fmt.Fprintf(&b, "\t\t'%s%s%s%s%s'\n", zshQuote(excl), star, opt, zshQuote(desc), zshQuote(value))
		}
	}
	switch args {
	case "dirs":
		b.WriteString("\t\t'1:context directory:_files -/'\n")
	case "name":
		b.WriteString("\t\t'1:name: '\n")
	case "none":
	default:
		b.WriteString("\t\t'*:argument:_default'\n")
	}
	b.WriteString("\t)\n\t_arguments -s -S $specs\n}\n\n")
	fmt.Fprintf(&b, "%s_connections() {\n\tlocal -a items\n\titems=(${(f)\"$(%s)\"})\n\tcompadd -a items\n}\n\n", fn, listConnections)
	fmt.Fprintf(&b, "%s_farms() {\n\tlocal -a items\n\titems=(${(f)\"$(%s)\"})\n\tcompadd -a items\n}\n\n", fn, listFarms)
	// Autoloaded from $fpath (the usual install) or sourced by hand.
	fmt.Fprintf(&b, "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n\t%s \"$@\"\nelse\n\tcompdef %s %s\nfi\n", fn, fn, name)
	return b.String()
}

func zshValue(fn, hint string) string {
	kind, words, _ := strings.Cut(hint, ":")
	switch kind {
	case "words":
		return "(" + words + ")"
	case "connections", "farms":
		return fn + "_" + kind
	case "files":
		return "_files"
	case "dirs":
		return "_files -/"
	}
	return " "
}

// zshEscape escapes what _arguments gives a meaning to in descriptions.
func zshEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `[`, `\[`, `]`, `\]`, `:`, `\:`).Replace(s)
}

// zshQuote makes s safe inside single quotes.
func zshQuote(s string) string { return strings.ReplaceAll(s, `'`, `'\''`) }

func fishCompletion(name string, flags []complFlag, args string) string {
	var b strings.Builder
	b.WriteString(header("#", name, "fish"))
	switch args {
	case "none", "name":
		fmt.Fprintf(&b, "complete -c %s -f\n", name)
	case "dirs":
		fmt.Fprintf(&b, "complete -c %s -f -a '(__fish_complete_directories)'\n", name)
	}
	for _, f := range flags {
		line := "complete -c " + name
		for _, s := range f.short {
			line += " -s " + s
		}
		for _, l := range f.long {
			line += " -l " + l
		}
		if f.value {
			kind, words, _ := strings.Cut(f.hint, ":")
			switch kind {
			case "words":
				line += " -x -a " + fishQuote(words)
			case "connections":
				line += " -x -a " + fishQuote("("+listConnections+")")
			case "farms":
				line += " -x -a " + fishQuote("("+listFarms+")")
			case "dirs":
				line += " -x -a '(__fish_complete_directories)'"
			case "files":
				line += " -r -F"
			default:
				line += " -x"
			}
		}
		line += " -d " + fishQuote(f.usage)
		b.WriteString(line + "\n")
	}
	return b.String()
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
