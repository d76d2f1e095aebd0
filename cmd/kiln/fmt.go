package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/config/format"
)

// exitStatus is an error that sets kiln's exit status (output already
// printed), e.g. 3 when fmt -check finds files to format, as packer fmt.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

func cmdFmt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fmt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "only check: exit 3 if a file is not formatted (implies -write=false)")
	diff := fs.Bool("diff", false, "print a unified diff of each formatting change")
	write := fs.Bool("write", true, "rewrite the files in place")
	recursive := fs.Bool("recursive", false, "also format files in subdirectories")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: kiln fmt [options] [PATH...|-]

  Rewrite HCL2 templates (*.pkr.hcl) and variable files (*.pkrvars.hcl) in
  canonical style and list the files changed. PATH is a file or a
  directory (default "."); "-" reads standard input and writes the
  formatted text to standard output. JSON templates are not modified.

Options:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if *check {
		*write = false
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{"."}
	}
	if len(paths) == 1 && paths[0] == "-" {
		return fmtStdin(stdin, stdout, stderr, *check)
	}
	res := format.Paths(paths, format.Options{
		Write: *write, Diff: *diff, Recursive: *recursive, Out: stdout,
		List: func(name string) { fmt.Fprintln(stdout, name) },
	})
	if res.Diags.HasErrors() {
		config.WriteDiagnostics(stderr, res.Files, res.Diags, false)
		return errReported
	}
	if *check && len(res.Changed) > 0 {
		return exitStatus(3)
	}
	return nil
}

// fmtStdin formats standard input to standard output (nothing is printed
// with -check: the exit status says it all).
func fmtStdin(stdin io.Reader, stdout, stderr io.Writer, check bool) error {
	src, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	out, f, diags := format.Source(src, "<stdin>")
	if diags.HasErrors() {
		config.WriteDiagnostics(stderr, map[string]*hcl.File{"<stdin>": f}, diags, false)
		return errReported
	}
	changed := string(out) != string(src)
	if check {
		if changed {
			return exitStatus(3)
		}
		return nil
	}
	if _, err := stdout.Write(out); err != nil {
		return fmt.Errorf("writing standard output: %w", err)
	}
	return nil
}
