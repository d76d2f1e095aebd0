package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/ui"
)

// outputFlags select how a command prints: for people, Packer's
// -machine-readable, or kiln's --json event stream.
type outputFlags struct {
	machine bool
	json    bool
}

// register adds -machine-readable, and -json (--json) when the command
// has events to stream.
func (o *outputFlags) register(fs *flag.FlagSet, withJSON bool) {
	fs.BoolVar(&o.machine, "machine-readable", false, "print Packer's machine-readable output on stdout (timestamp,target,type,data...)")
	if withJSON {
		fs.BoolVar(&o.json, "json", false, "print one JSON event per line on stdout (kiln extension; schema in README.md)")
	}
}

// output returns the command's Output on stdout.
func (o *outputFlags) output(stdout io.Writer, secrets *ui.Secrets) (*ui.Output, error) {
	out := ui.NewOutput(stdout, secrets)
	switch {
	case o.machine && o.json:
		return out, errors.New("-machine-readable and --json cannot be used together")
	case o.machine:
		out.Format = ui.MachineReadable
	case o.json:
		out.Format = ui.JSON
	}
	return out, nil
}

// outputFlagNames are the flags run moves after the command name, so that
// they work anywhere on the command line, as Packer's -machine-readable does
// ("packer -machine-readable version").
var outputFlagNames = map[string]bool{"-machine-readable": true, "--machine-readable": true, "-json": true, "--json": true}

// hoistOutputFlags moves the output flags found anywhere in args (before a
// "--") to just after the command name.
func hoistOutputFlags(args []string) []string {
	var flags, rest []string
	for i, a := range args {
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if outputFlagNames[a] {
			flags = append(flags, a)
			continue
		}
		rest = append(rest, a)
	}
	if len(flags) == 0 || len(rest) == 0 {
		return args
	}
	return append(append([]string{rest[0]}, flags...), rest[1:]...)
}

// reportDiags prints template diagnostics: for people on stderr always
// (with source snippets), and also on stdout in the machine formats, as
// ui error lines (Packer) or error events carrying file, line and column.
func reportDiags(out *ui.Output, stderr io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) {
	config.WriteDiagnostics(stderr, files, diags, false)
	if out == nil || out.Format == ui.Human {
		return
	}
	for _, d := range diags {
		if out.Format == ui.MachineReadable {
			var buf bytes.Buffer
			config.WriteDiagnostics(&buf, files, hcl.Diagnostics{d}, false)
			level := "error"
			if d.Severity == hcl.DiagWarning {
				level = "say"
			}
			out.Machine("", "ui", level, strings.TrimRight(buf.String(), "\n"))
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Severity == hcl.DiagWarning {
			out.Event(ui.Event{Type: ui.EventUI, Level: "say", Message: "Warning: " + msg})
			continue
		}
		ev := ui.Event{Type: ui.EventError, Err: msg}
		if d.Subject != nil {
			ev.File, ev.Line, ev.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out.Event(ev)
	}
}

// reportErr repeats a command's error on stdout in the machine formats
// (run prints it on stderr for people).
func reportErr(out *ui.Output, err error) {
	if err == nil || out == nil || errors.Is(err, errReported) {
		return
	}
	switch out.Format {
	case ui.MachineReadable:
		out.Machine("", "ui", "error", fmt.Sprintf("Error: %v", err))
	case ui.JSON:
		out.Event(ui.Event{Type: ui.EventError, Err: err.Error()})
	}
}
