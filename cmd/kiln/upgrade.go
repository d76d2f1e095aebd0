package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/internal/fsx"
)

// cmdUpgrade is `packer hcl2_upgrade`: a legacy JSON template in, an
// equivalent HCL2 template out (TEMPLATE.pkr.hcl unless -output-file).
func cmdUpgrade(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hcl2_upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output-file", "", "where to write the HCL2 template (default TEMPLATE.pkr.hcl)")
	annotate := fs.Bool("with-annotations", false, "add comments explaining each section")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: kiln hcl2_upgrade [options] TEMPLATE.json\n\n  Convert a legacy JSON template to HCL2: variable, source and build blocks.\n  Placeholders without an HCL2 equivalent are kept as text, with a comment.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("expected one JSON template, got %d arguments", fs.NArg())
	}
	in := fs.Arg(0)
	out := *output
	if out == "" {
		out = in + ".pkr.hcl" // Packer's default name
	}
	src, files, diags := config.Upgrade(in, config.UpgradeOptions{WithAnnotations: *annotate})
	if len(diags) > 0 {
		config.WriteDiagnostics(stderr, files, diags, false)
	}
	if diags.HasErrors() {
		return errReported
	}
	if err := fsx.WriteFile(out, src, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(stdout, "Successfully created %s. Check it with `kiln validate %s`.\n", out, out)
	return nil
}
