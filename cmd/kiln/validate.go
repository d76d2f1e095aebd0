package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/ui"
)

// templateCommand parses the flags of a command that reads a template
// (validate, inspect): the template flags, the output flags and extra ones.
// It returns the parsed flags and the command's Output.
func templateCommand(name, usage string, withJSON bool, extra func(*flag.FlagSet), args []string, stdout, stderr io.Writer) (*templateFlags, *flag.FlagSet, *ui.Output, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	tf := &templateFlags{}
	tf.register(fs)
	var of outputFlags
	of.register(fs, withJSON)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kiln %s [options] TEMPLATE\n\n  %s\n\nOptions:\n", name, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, errReported
	}
	out, err := of.output(stdout, nil)
	tf.out = out
	return tf, fs, out, err
}

func cmdValidate(args []string, stdout, stderr io.Writer) (err error) {
	syntaxOnly := func(fs *flag.FlagSet) {
		fs.Bool("syntax-only", false, "accepted for Packer compatibility; kiln always checks everything (it is fast)")
	}
	tf, fs, out, err := templateCommand("validate", "Check that TEMPLATE parses, its variables resolve and its qemu sources are valid.",
		true, syntaxOnly, args, stdout, stderr)
	if err != nil {
		return err
	}
	defer func() { reportErr(out, err) }()
	if _, _, err := tf.load(fs, stderr); err != nil {
		return err
	}
	out.Say("The configuration is valid.")
	return nil
}

func cmdInspect(args []string, stdout, stderr io.Writer) (err error) {
	tf, fs, out, err := templateCommand("inspect", "Show the variables, sources and builds of TEMPLATE.",
		false, nil, args, stdout, stderr)
	if err != nil {
		return err
	}
	defer func() { reportErr(out, err) }()
	tpl, builds, err := tf.load(fs, stderr)
	if err != nil {
		return err
	}
	if out.Format == ui.Human {
		writeInspect(stdout, tpl, builds)
		return nil
	}
	// Packer prints an HCL2 inspection as one ui say message.
	var buf strings.Builder
	writeInspect(&buf, tpl, builds)
	out.Say("%s", strings.TrimRight(buf.String(), "\n"))
	return nil
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of outputFlags
	of.register(fs, false)
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	out, err := of.output(stdout, nil)
	if err != nil {
		return err
	}
	// Packer's version lines: the number, the pre-release label, the commit.
	num, pre, _ := strings.Cut(version, "-")
	out.Machine("", "version", num)
	out.Machine("", "version-prerelease", pre)
	out.Machine("", "version-commit", "")
	out.Say("kiln v%s", version)
	return nil
}

// writeInspect prints the template the way `packer inspect` does: input
// variables with their values (sensitive ones masked), then the builds.
func writeInspect(w io.Writer, tpl *config.Template, builds []*config.Build) {
	fmt.Fprintln(w, "Packer Inspect: HCL2 mode (kiln)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "> input-variables:")
	fmt.Fprintln(w)
	for _, v := range tpl.Variables {
		val := v.Value
		if v.Sensitive {
			val = "<sensitive>"
		}
		fmt.Fprintf(w, "var.%s: %s\n", v.Name, val)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "> builds:")
	fmt.Fprintln(w)
	for _, b := range builds {
		fmt.Fprintf(w, "  > %s:\n", b.Name)
		fmt.Fprintf(w, "    sources: source.%s.%s (output %s, vm_name %s, format %s)\n", b.SourceType, b.SourceName, b.Source.OutputDirectory, b.Source.VMName, b.Source.Format)
		if len(b.Provisioners) > 0 {
			fmt.Fprintln(w, "    provisioners:")
			for _, p := range b.Provisioners {
				fmt.Fprintf(w, "      %s\n", p.Type)
			}
		}
		if len(b.PostProcessors) > 0 {
			fmt.Fprintln(w, "    post-processors:")
			for i, chain := range b.PostProcessors {
				var types []string
				for _, pp := range chain {
					types = append(types, pp.Type)
				}
				fmt.Fprintf(w, "      %d: %s\n", i, strings.Join(types, " -> "))
			}
		}
		fmt.Fprintln(w)
	}
}
