package stage

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/farm-build/farm/lib/version"
	"github.com/urfave/cli/v2"
)

// Stages are farm's commands (the one for people, the four stages and the
// timeline), for SEE ALSO and the install targets.
var Stages = []string{"farm", "farm-nodes", "farm-plan", "farm-build", "farm-manifest", "farm-timeline"}

// helpTemplate is urfave/cli's help for an app without subcommands: one
// OPTIONS list instead of "GLOBAL OPTIONS", no COMMANDS section.
var helpTemplate = strings.ReplaceAll(cli.AppHelpTemplate, "GLOBAL OPTIONS:", "OPTIONS:")

// Man renders the app's man page (section 1) from the same definitions
// --help prints: Usage, UsageText, Description and every visible flag with
// its default and environment variable, so the page cannot drift from the
// binary. urfave/cli renders it (App.ToManWithSection, go-md2man); this
// turns the help's conventions into man sections first:
//
//   - a line "Examples:", "Environment:", "Exit status: ...", "Files:" or
//     "See also:" at the start of a line of the Description starts the
//     section of that name;
//   - indented lines under "Environment:" are "NAME  text" entries;
//   - other indented lines are shown as they are (commands, tables).
func Man(app *cli.App) (string, error) {
	app.Setup()
	sections := splitDescription(app.Description)
	var md strings.Builder
	md.WriteString(sections.text("")) // the DESCRIPTION proper
	md.WriteString("\n# OPTIONS\n\n")
	for _, f := range app.VisibleFlags() {
		names, usage, _ := strings.Cut(f.String(), "\t")
		fmt.Fprintf(&md, "%s\n: %s\n\n", mdCode(names), mdEscape(strings.TrimSpace(usage)))
	}
	for _, name := range []string{"EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"} {
		body := sections.text(name)
		if name == "SEE ALSO" {
			body = seeAlso(app.Name, body)
		}
		if strings.TrimSpace(body) != "" {
			fmt.Fprintf(&md, "\n# %s\n\n%s", name, body)
		}
	}
	page := &cli.App{
		Name:            app.Name,
		Usage:           app.Usage,
		UsageText:       manUsageMark,
		Description:     md.String(),
		HideHelpCommand: true,
		HideHelp:        true,
		HideVersion:     true,
	}
	roff, err := page.ToManWithSection(1)
	if err != nil {
		return "", err
	}
	return fixRoff(roff, app), nil
}

// manUsageMark stands in for UsageText in the page urfave/cli renders: its
// template puts the usage after the description, we want it as SYNOPSIS.
const manUsageMark = "FARM-USAGE-MARK"

func fixRoff(roff string, app *cli.App) string {
	// The header: name, section, no date (reproducible), version, manual.
	roff = regexp.MustCompile(`(?m)^\.TH .*$`).ReplaceAllLiteralString(roff,
		fmt.Sprintf(`.TH %s 1 "" "farm %s" "farm manual"`, strings.ToUpper(app.Name), roffQuote(version.Version)))
	// Drop the "**Usage**: MARK" block urfave/cli appends to the description.
	if i := strings.Index(roff, `\fBUsage\fP:`); i >= 0 {
		head := strings.TrimSuffix(strings.TrimRight(roff[:i], "\n"), ".PP")
		rest := roff[i:]
		if j := strings.Index(rest, "\n.SH "); j >= 0 {
			roff = head + rest[j+1:]
		} else {
			roff = head
		}
	}
	// SYNOPSIS: the usage lines of --help.
	usage := app.UsageText
	if usage == "" {
		usage = app.Name + " [OPTIONS]"
	}
	synopsis := ".SH SYNOPSIS\n.nf\n" + roffLines(usage) + "\n.fi\n"
	roff = regexp.MustCompile(`(?s)\.SH SYNOPSIS\n.*?\n(\.SH )`).ReplaceAllStringFunc(roff, func(m string) string {
		return synopsis + "\n.SH "
	})
	return roff
}

func seeAlso(self, extra string) string {
	var refs []string
	for _, s := range Stages {
		if s != self {
			refs = append(refs, "**"+s+"**(1)")
		}
	}
	refs = append(refs, "**podman-system-connection**(1)", "**podman-farm**(1)", "**containers.conf**(5)",
		"**containers-auth.json**(5)")
	out := strings.Join(refs, ", ") + "\n\nThe guides: docs/getting-started.md, docs/" + self + ".md and docs/records.md " +
		"(the record contract) in farm's source.\n"
	if strings.TrimSpace(extra) != "" {
		out = extra + "\n" + out
	}
	return out
}

// described is a Description cut into sections, each as markdown.
type described map[string]*strings.Builder

func (d described) text(name string) string {
	if b := d[name]; b != nil {
		return b.String()
	}
	return ""
}

var sectionLine = regexp.MustCompile(`^(?i)(examples|environment|exit status|files|see also):\s*(.*)$`)

// envEntry is "   NAME   what it does" under Environment:.
var envEntry = regexp.MustCompile(`^\s+([A-Z][A-Z0-9_]*)\s{2,}(.*)$`)

func splitDescription(desc string) described {
	d := described{}
	section := ""
	out := func() *strings.Builder {
		if d[section] == nil {
			d[section] = &strings.Builder{}
		}
		return d[section]
	}
	inCode := false
	endCode := func() {
		if inCode {
			out().WriteString("```\n\n")
			inCode = false
		}
	}
	lines := strings.Split(strings.TrimSpace(desc), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], " \t")
		if m := sectionLine.FindStringSubmatch(line); m != nil {
			endCode()
			section = strings.ToUpper(m[1])
			if m[2] != "" {
				out().WriteString(mdEscape(m[2]) + "\n")
			}
			continue
		}
		indented := strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")
		switch {
		case line == "":
			if inCode && i+1 < len(lines) && strings.HasPrefix(lines[i+1], " ") {
				out().WriteString("\n") // a blank line inside a block of commands
				continue
			}
			endCode()
			out().WriteString("\n")
		case indented && section == "ENVIRONMENT" && envEntry.MatchString(line):
			m := envEntry.FindStringSubmatch(line)
			text := m[2]
			// Continuation lines: indented deeper, no NAME of their own.
			for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" && !envEntry.MatchString(lines[i+1]) &&
				strings.HasPrefix(lines[i+1], " ") {
				i++
				text += " " + strings.TrimSpace(lines[i])
			}
			fmt.Fprintf(out(), "%s\n: %s\n\n", mdCode(m[1]), mdEscape(text))
		case indented:
			if !inCode {
				out().WriteString("```\n")
				inCode = true
			}
			out().WriteString(dedent(line) + "\n")
		default:
			endCode()
			out().WriteString(mdEscape(line) + "\n")
		}
	}
	endCode()
	return d
}

func dedent(line string) string {
	for _, p := range []string{"   ", "\t"} {
		if s, ok := strings.CutPrefix(line, p); ok {
			return s
		}
	}
	return strings.TrimLeft(line, " ")
}

// mdEscape keeps help text literal in markdown.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>#|", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mdCode shows s in bold (flag names, variables), escaped.
func mdCode(s string) string { return "**" + mdEscape(s) + "**" }

func roffLines(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		l = strings.ReplaceAll(strings.TrimSpace(l), `\`, `\e`)
		l = strings.ReplaceAll(l, "-", `\-`)
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func roffQuote(s string) string { return strings.NewReplacer(`"`, `\(dq`, `\`, `\e`).Replace(s) }
