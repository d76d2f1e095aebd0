package config

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics prints diags for a human, one block each:
//
//	build.pkr.hcl:12:3: Error: Unsupported argument
//
//	   12 |   iso_urll = "x"
//	      |   ^^^^^^^^
//
//	  An argument named "iso_urll" is not expected here. Did you mean "iso_url"?
//
// The first line is in the file:line:column form editors and terminals
// recognise. files (Template.Files) provides the source lines; a
// diagnostic whose file is not in it is printed without the snippet.
// color adds ANSI colours for a terminal.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	var buf bytes.Buffer
	for _, d := range diags {
		writeDiagnostic(&buf, files, d, color)
	}
	_, err := w.Write(buf.Bytes())
	if err != nil {
		return fmt.Errorf("writing diagnostics: %w", err)
	}
	return nil
}

func writeDiagnostic(buf *bytes.Buffer, files map[string]*hcl.File, d *hcl.Diagnostic, color bool) {
	sev, code := "Error", "\x1b[1;31m"
	if d.Severity == hcl.DiagWarning {
		sev, code = "Warning", "\x1b[1;33m"
	}
	paint := func(s string) string {
		if !color {
			return s
		}
		return code + s + "\x1b[0m"
	}
	bold := func(s string) string {
		if !color {
			return s
		}
		return "\x1b[1m" + s + "\x1b[0m"
	}

	if d.Subject != nil {
		fmt.Fprintf(buf, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	fmt.Fprintf(buf, "%s: %s\n", paint(sev), bold(d.Summary))

	if d.Subject != nil {
		if f := files[d.Subject.Filename]; f != nil && f.Bytes != nil {
			line, prefix, width := snippet(f.Bytes, *d.Subject)
			num := strconv.Itoa(d.Subject.Start.Line)
			pad := strings.Repeat(" ", len(num))
			fmt.Fprintf(buf, "\n   %s | %s\n", num, line)
			fmt.Fprintf(buf, "   %s | %s%s\n", pad, prefix, paint(strings.Repeat("^", width)))
		}
	}
	if d.Detail != "" {
		buf.WriteString("\n")
		for _, l := range strings.Split(strings.TrimRight(d.Detail, "\n"), "\n") {
			if l == "" {
				buf.WriteString("\n")
				continue
			}
			buf.WriteString("  " + l + "\n")
		}
	}
	buf.WriteString("\n")
}

// snippet returns the source line holding r's start, the whitespace that
// puts a caret under r's first character (tabs kept so it lines up), and
// how many carets cover r on that line.
func snippet(src []byte, r hcl.Range) (line, prefix string, width int) {
	start := min(max(r.Start.Byte, 0), len(src))
	end := min(max(r.End.Byte, start), len(src))
	ls := bytes.LastIndexByte(src[:start], '\n') + 1
	le := len(src)
	if i := bytes.IndexByte(src[start:], '\n'); i >= 0 {
		le = start + i
	}
	line = strings.TrimRight(string(src[ls:le]), "\r")
	var p strings.Builder
	for _, c := range string(src[ls:start]) {
		if c == '\t' {
			p.WriteRune('\t')
		} else {
			p.WriteRune(' ')
		}
	}
	width = utf8.RuneCount(src[start:min(end, le)])
	return line, p.String(), max(width, 1)
}
