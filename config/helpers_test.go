package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// minimalSource is the smallest valid qemu source body.
const minimalSource = `
  iso_url      = "https://example.org/debian.iso"
  iso_checksum = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  ssh_username = "root"
`

var fixedNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("X", 3600))

// writeDir writes files into a fresh temporary directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadSrc loads a one-file template.
func loadSrc(t *testing.T, src string, opts LoadOptions) (*Template, hcl.Diagnostics) {
	t.Helper()
	dir := writeDir(t, map[string]string{"main.pkr.hcl": src})
	if opts.Now.IsZero() {
		opts.Now = fixedNow
	}
	return Load(dir, opts)
}

// mustLoad loads a template that must have no errors.
func mustLoad(t *testing.T, src string, opts LoadOptions) *Template {
	t.Helper()
	tmpl, diags := loadSrc(t, src, opts)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%s", render(tmpl, diags))
	}
	return tmpl
}

// loadErr loads a template that must fail and returns the rendered
// diagnostics.
func loadErr(t *testing.T, src string, opts LoadOptions) (string, hcl.Diagnostics) {
	t.Helper()
	tmpl, diags := loadSrc(t, src, opts)
	if !diags.HasErrors() {
		t.Fatalf("expected errors, got none (warnings: %s)", render(tmpl, diags))
	}
	return render(tmpl, diags), diags
}

func render(tmpl *Template, diags hcl.Diagnostics) string {
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, tmpl.Files, diags, false); err != nil {
		panic(err)
	}
	return buf.String()
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q; got:\n%s", w, got)
		}
	}
}

// errorAt finds the error diagnostic whose summary contains summary and
// checks that it starts at line:col.
func errorAt(t *testing.T, diags hcl.Diagnostics, summary string, line, col int) {
	t.Helper()
	for _, d := range diags {
		if d.Severity == hcl.DiagError && strings.Contains(d.Summary, summary) {
			if d.Subject == nil {
				t.Errorf("%q has no subject", d.Summary)
				return
			}
			if d.Subject.Start.Line != line || d.Subject.Start.Column != col {
				t.Errorf("%q at %d:%d, want %d:%d", d.Summary, d.Subject.Start.Line, d.Subject.Start.Column, line, col)
			}
			return
		}
	}
	t.Errorf("no error containing %q in %v", summary, diags)
}

func onlyBuild(t *testing.T, tmpl *Template) *Build {
	t.Helper()
	if len(tmpl.Builds) != 1 {
		t.Fatalf("got %d builds, want 1", len(tmpl.Builds))
	}
	return tmpl.Builds[0]
}
