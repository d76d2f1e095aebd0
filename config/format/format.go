// Package format is `kiln fmt`: HCL2 templates (*.pkr.hcl) and variable
// files (*.pkrvars.hcl) rewritten in canonical HCL style, as `packer fmt`
// does. A file that does not parse is reported with file:line:column and
// left untouched: formatting tokens of broken syntax would hide the error.
package format

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/kilnbuild/kiln/internal/fsx"
)

// Source returns src in canonical form. A syntax error is returned as
// diagnostics and no output.
func Source(src []byte, filename string) ([]byte, *hcl.File, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, f, diags
	}
	return hclwrite.Format(src), f, nil
}

// IsTemplate reports whether name is a file kiln fmt formats.
func IsTemplate(name string) bool {
	return strings.HasSuffix(name, ".pkr.hcl") || strings.HasSuffix(name, ".pkrvars.hcl")
}

// Options say what Paths does with each file that is not formatted.
type Options struct {
	Write     bool // rewrite it in place (atomically, keeping its mode)
	Diff      bool // print a unified diff
	Recursive bool // descend into subdirectories of a directory argument
	// List is called with the name of every file that needed formatting.
	List func(name string)
	// Out receives diffs.
	Out io.Writer
}

// Result is what Paths did.
type Result struct {
	Changed []string             // files not in canonical form, in order
	Files   map[string]*hcl.File // parsed files, for diagnostic snippets
	Diags   hcl.Diagnostics      // syntax and I/O errors
}

// Paths formats files and directories (their *.pkr.hcl and *.pkrvars.hcl
// files; hidden and editor backup files are skipped). Every path is
// processed even after an error.
func Paths(paths []string, opts Options) Result {
	res := Result{Files: map[string]*hcl.File{}}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			formatFile(p, opts, &res)
			continue
		}
		walk(p, opts, &res)
	}
	return res
}

func walk(dir string, opts Options, res *Result) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		res.Diags = append(res.Diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read directory", Detail: err.Error()})
		return
	}
	for _, e := range entries {
		name := e.Name()
		if ignored(name) {
			continue
		}
		p := filepath.Join(dir, name)
		switch {
		case e.IsDir():
			if opts.Recursive {
				walk(p, opts, res)
			}
		case IsTemplate(name):
			formatFile(p, opts, res)
		}
	}
}

// ignored matches hidden files and editor leftovers (vim's "x~", emacs'
// "#x#"), as packer fmt skips them.
func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") ||
		(strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"))
}

func formatFile(path string, opts Options, res *Result) {
	fail := func(summary string, err error) {
		res.Diags = append(res.Diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error()})
	}
	if !IsTemplate(path) {
		fail("Not an HCL2 template", fmt.Errorf("%s: kiln fmt formats *.pkr.hcl and *.pkrvars.hcl files (JSON templates are left alone, as by packer fmt)", path))
		return
	}
	src, err := os.ReadFile(path)
	if err != nil {
		fail("Cannot read file", err)
		return
	}
	out, f, diags := Source(src, path)
	if f != nil {
		res.Files[path] = f
	}
	if diags.HasErrors() {
		res.Diags = append(res.Diags, diags...)
		return
	}
	if bytes.Equal(src, out) {
		return
	}
	res.Changed = append(res.Changed, path)
	if opts.List != nil {
		opts.List(path)
	}
	if opts.Diff && opts.Out != nil {
		io.WriteString(opts.Out, Diff("old/"+path, "new/"+path, src, out))
	}
	if opts.Write {
		fi, err := os.Stat(path)
		if err != nil {
			fail("Cannot rewrite file", err)
			return
		}
		if err := fsx.WriteFile(path, out, fi.Mode().Perm()); err != nil {
			fail("Cannot rewrite file", fmt.Errorf("writing %s: %w", path, err))
		}
	}
}
