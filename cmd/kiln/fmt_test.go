package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFmtCheckWriteDiffAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	ugly := filepath.Join(dir, "t.pkr.hcl")
	writeFile(t, ugly, "a=1\nbb = 2\n")
	writeFile(t, filepath.Join(dir, "ok.pkrvars.hcl"), "x = 1\n")

	// -check: lists the file, exit 3 (packer fmt's), nothing written even with -write.
	code, out, errs := kiln(t, "fmt", "-check", "-write=true", dir)
	if code != 3 || out != ugly+"\n" {
		t.Fatalf("-check: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if b, _ := os.ReadFile(ugly); string(b) != "a=1\nbb = 2\n" {
		t.Fatal("-check wrote the file")
	}
	// -diff -write=false: the file name and a unified diff, exit 0.
	code, out, _ = kiln(t, "fmt", "-diff", "-write=false", ugly)
	if code != 0 || !strings.HasPrefix(out, ugly+"\n--- old/"+ugly+"\n+++ new/"+ugly+"\n") || !strings.Contains(out, "-a=1\n+a  = 1\n") {
		t.Fatalf("-diff: exit %d:\n%s", code, out)
	}
	// Default: rewrite and list.
	code, out, _ = kiln(t, "fmt", dir)
	if b, _ := os.ReadFile(ugly); code != 0 || out != ugly+"\n" || string(b) != "a  = 1\nbb = 2\n" {
		t.Fatalf("fmt: exit %d, stdout %q, file %q", code, out, b)
	}
	// Now formatted: -check passes silently.
	if code, out, _ := kiln(t, "fmt", "-check", dir); code != 0 || out != "" {
		t.Fatalf("-check on formatted files: exit %d, %q", code, out)
	}
}

func TestFmtSyntaxErrorNamesPosition(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pkr.hcl")
	writeFile(t, bad, "source \"qemu\" \"x\" {\n  iso_url = \"a.iso\n}\n")
	code, _, errs := kiln(t, "fmt", bad)
	if code != 1 || !strings.Contains(errs, bad+":2:") {
		t.Fatalf("want exit 1 and %s:2:..., got %d:\n%s", bad, code, errs)
	}
	if b, _ := os.ReadFile(bad); !strings.Contains(string(b), "iso_url = \"a.iso\n") {
		t.Fatal("broken file modified")
	}
}

func TestFmtStdin(t *testing.T) {
	code, out, errs := kilnStdin(t, "b=1\n", "fmt", "-")
	if code != 0 || out != "b = 1\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, out, _ := kilnStdin(t, "b=1\n", "fmt", "-check", "-"); code != 3 || out != "" {
		t.Fatalf("-check -: exit %d, %q", code, out)
	}
	if code, _, errs := kilnStdin(t, "b = [\n", "fmt", "-"); code != 1 || !strings.Contains(errs, "<stdin>:") {
		t.Fatalf("broken stdin: exit %d, %q", code, errs)
	}
}

func kilnStdin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}
