package format

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// Each testdata/NAME.in.hcl formats to testdata/NAME.golden; formatting
// the golden file again changes nothing.
func TestGolden(t *testing.T) {
	ins, _ := filepath.Glob("testdata/*.in.hcl")
	if len(ins) < 3 {
		t.Fatalf("golden inputs missing: %v", ins)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.hcl")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, _, diags := Source(src, in)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			golden := filepath.Join("testdata", name+".golden")
			want := testutil.ReadGolden(t, golden, got)
			if !bytes.Equal(got, want) {
				t.Fatalf("formatted %s differs from %s:\n%s", in, golden, Diff("want", "got", want, got))
			}
			again, _, _ := Source(got, golden)
			if !bytes.Equal(again, got) {
				t.Fatalf("formatting is not idempotent:\n%s", Diff("once", "twice", got, again))
			}
		})
	}
}

func TestSyntaxErrorHasPosition(t *testing.T) {
	_, _, diags := Source([]byte("source \"qemu\" \"x\" {\n  iso_url = \n}\n"), "bad.pkr.hcl")
	if !diags.HasErrors() {
		t.Fatal("no error for a missing value")
	}
	s := diags[0].Subject
	if s == nil || s.Filename != "bad.pkr.hcl" || s.Start.Line != 2 || s.Start.Column < 12 {
		t.Fatalf("want an error at bad.pkr.hcl:2:12 or later, got %v", diags)
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestPathsWritesListsAndSkips(t *testing.T) {
	dir := t.TempDir()
	ugly := "a=1\nbb = 2\n"
	pretty := "a  = 1\nbb = 2\n"
	write(t, filepath.Join(dir, "a.pkr.hcl"), ugly, 0o600)
	write(t, filepath.Join(dir, "ok.pkrvars.hcl"), pretty, 0o644)
	write(t, filepath.Join(dir, "notes.hcl"), ugly, 0o644)       // not a template
	write(t, filepath.Join(dir, ".hidden.pkr.hcl"), ugly, 0o644) // hidden
	write(t, filepath.Join(dir, "b.pkr.hcl~"), ugly, 0o644)      // editor backup
	write(t, filepath.Join(dir, "sub", "c.pkr.hcl"), ugly, 0o644)

	var listed []string
	res := Paths([]string{dir}, Options{Write: true, List: func(n string) { listed = append(listed, n) }})
	if len(res.Diags) > 0 {
		t.Fatal(res.Diags)
	}
	if want := []string{filepath.Join(dir, "a.pkr.hcl")}; strings.Join(listed, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %v, want %v (no recursion without -recursive)", listed, want)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "a.pkr.hcl"))
	if string(got) != pretty {
		t.Fatalf("a.pkr.hcl not rewritten: %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "a.pkr.hcl")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode changed to %v", fi.Mode().Perm())
	}
	for _, skipped := range []string{"notes.hcl", ".hidden.pkr.hcl", "b.pkr.hcl~", "sub/c.pkr.hcl"} {
		if b, _ := os.ReadFile(filepath.Join(dir, skipped)); string(b) != ugly {
			t.Errorf("%s was modified", skipped)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}

	res = Paths([]string{dir}, Options{Recursive: true})
	if len(res.Changed) != 1 || res.Changed[0] != filepath.Join(dir, "sub", "c.pkr.hcl") {
		t.Fatalf("-recursive without -write: changed %v", res.Changed)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sub", "c.pkr.hcl")); string(b) != ugly {
		t.Fatal("Write=false rewrote a file")
	}
}

func TestPathsReportsBrokenFileAndContinues(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "a.pkr.hcl")
	write(t, bad, "x = {\n", 0o644)
	write(t, filepath.Join(dir, "b.pkr.hcl"), "y=1\n", 0o644)
	res := Paths([]string{dir, filepath.Join(dir, "nope.json")}, Options{Write: true})
	if len(res.Diags) != 2 || res.Diags[0].Subject == nil || res.Diags[0].Subject.Filename != bad ||
		!strings.Contains(res.Diags[1].Detail, "nope.json") {
		t.Fatalf("want a syntax error in a.pkr.hcl and a not-a-template error, got %v", res.Diags)
	}
	if res.Files[bad] == nil {
		t.Fatal("the broken file's source is not kept for the diagnostic snippet")
	}
	if b, _ := os.ReadFile(bad); string(b) != "x = {\n" {
		t.Fatal("broken file was rewritten")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b.pkr.hcl")); string(b) != "y = 1\n" {
		t.Fatalf("b.pkr.hcl not formatted after a.pkr.hcl failed: %q", b)
	}
}

// The diff applies with patch(1) and turns the old file into the new one.
func TestDiffAppliesWithPatch(t *testing.T) {
	testutil.Tool(t, "patch")
	src, err := os.ReadFile("testdata/template.in.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][2]string{
		"golden":      {string(src), ""},
		"no newline":  {"a=1\nb = 2", "a = 1\nb = 2"},
		"far apart":   {"a=1\n" + strings.Repeat("x = 1\n", 20) + "b=2\n", "a = 1\n" + strings.Repeat("x = 1\n", 20) + "b = 2\n"},
		"insert only": {"a = 1\n", "a = 1\nb = 2\nc = 3\n"},
		"delete all":  {"a = 1\nb = 2\n", ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			old, new := c[0], c[1]
			if name == "golden" {
				out, _, _ := Source([]byte(old), "t")
				new = string(out)
			}
			d := Diff("old/t.pkr.hcl", "new/t.pkr.hcl", []byte(old), []byte(new))
			if !strings.HasPrefix(d, "--- old/t.pkr.hcl\n+++ new/t.pkr.hcl\n@@ -") {
				t.Fatalf("diff header: %q", d)
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "t.pkr.hcl")
			write(t, f, old, 0o644)
			cmd := exec.Command("patch", "-s", "-u", f)
			cmd.Stdin = strings.NewReader(d)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("patch: %v\n%s\ndiff:\n%s", err, out, d)
			}
			got, _ := os.ReadFile(f)
			if string(got) != new {
				t.Fatalf("patched file:\n%q\nwant:\n%q\ndiff:\n%s", got, new, d)
			}
		})
	}
	if Diff("a", "b", []byte("same\n"), []byte("same\n")) != "" {
		t.Fatal("diff of equal inputs is not empty")
	}
}
