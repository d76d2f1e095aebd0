package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kilnbuild/kiln/config"
)

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf templateFlags
	tf.register(fs)
	fs.Bool("syntax-only", false, "accepted for Packer compatibility; kiln always checks everything (it is fast)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: kiln validate [options] TEMPLATE\n\n  Check that TEMPLATE parses, its variables resolve and its qemu sources are valid.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if _, _, err := tf.load(fs, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "The configuration is valid.")
	return nil
}

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf templateFlags
	tf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: kiln inspect [options] TEMPLATE\n\n  Show the variables, sources and builds of TEMPLATE.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	tpl, builds, err := tf.load(fs, stderr)
	if err != nil {
		return err
	}
	writeInspect(stdout, tpl, builds)
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
