package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func kiln(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

var e2eTemplate = filepath.Join("..", "..", "testdata", "e2e", "build.pkr.hcl")

func TestValidateAcceptsTheE2ETemplate(t *testing.T) {
	code, out, errs := kiln(t, "validate", "-var", "guest_dir=/nonexistent", "-var", "out=/tmp/x", e2eTemplate)
	if code != 0 || !strings.Contains(out, "The configuration is valid.") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

func TestValidateReportsMissingVariableWithPosition(t *testing.T) {
	code, _, errs := kiln(t, "validate", "-var", "out=/tmp/x", e2eTemplate)
	if code == 0 || !strings.Contains(errs, "build.pkr.hcl:4:") || !strings.Contains(errs, "guest_dir") {
		t.Fatalf("want an error at the guest_dir variable, got exit %d:\n%s", code, errs)
	}
}

func TestValidateUnknownOptionSuggests(t *testing.T) {
	dir := t.TempDir()
	tpl := filepath.Join(dir, "t.pkr.hcl")
	writeFile(t, tpl, `source "qemu" "x" {
  iso_url      = "a.iso"
  iso_checksum = "none"
  ssh_username = "root"
  disk_sise    = "10G"
}
build { sources = ["source.qemu.x"] }
`)
	code, _, errs := kiln(t, "validate", tpl)
	if code == 0 || !strings.Contains(errs, "t.pkr.hcl:5:3") || !strings.Contains(errs, `Did you mean "disk_size"?`) {
		t.Fatalf("want a suggestion at 5:3, got exit %d:\n%s", code, errs)
	}
}

func TestInspectMasksSensitiveVariables(t *testing.T) {
	code, out, errs := kiln(t, "inspect", "-var", "guest_dir=/g", "-var", "out=/o", e2eTemplate)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"var.guest_dir: ", "var.root_password: <sensitive>", "e2e.qemu.qcow2", "e2e.qemu.raw", "shell-local"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "kiln-root-pw-3f9a") {
		t.Errorf("inspect shows the sensitive password")
	}
}

func TestBuildRejectsBadFlagsAndNoBuilds(t *testing.T) {
	if code, _, errs := kiln(t, "build", "-on-error=ask", e2eTemplate); code == 0 || !strings.Contains(errs, "-on-error must be cleanup or abort") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, _, errs := kiln(t, "build", "-only", "nothing.*", "-var", "guest_dir=/g", "-var", "out=/o", e2eTemplate)
	if code == 0 || !strings.Contains(errs, "no qemu builds") && !strings.Contains(errs, "nothing.*") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestVersionHelpAndUnknownCommand(t *testing.T) {
	if code, out, _ := kiln(t, "version"); code != 0 || !strings.HasPrefix(out, "kiln v") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, out, _ := kiln(t, "--help"); code != 0 || !strings.Contains(out, "validate") {
		t.Fatalf("help: %d %q", code, out)
	}
	if code, _, errs := kiln(t, "biuld"); code == 0 || !strings.Contains(errs, `unknown command "biuld"`) {
		t.Fatalf("unknown: %d %q", code, errs)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The README's example templates must stay valid.
func TestExamplesValidate(t *testing.T) {
	for _, dir := range []string{"debian-preseed", "ubuntu-autoinstall"} {
		code, out, errs := kiln(t, "validate", filepath.Join("..", "..", "examples", dir))
		if code != 0 || !strings.Contains(out, "valid") {
			t.Errorf("%s: exit %d\n%s%s", dir, code, out, errs)
		}
	}
	code, out, errs := kiln(t, "validate", "-var", "guest_dir=/g", filepath.Join("..", "..", "testdata", "example", "example.pkr.hcl"))
	if code != 0 {
		t.Errorf("example: exit %d\n%s%s", code, out, errs)
	}
}
