package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/internal/testutil"
)

func TestDirectoryLoading(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"vars.pkr.hcl":           `variable "name" { type = string }`,
		"sources.pkr.hcl":        `source "qemu" "a" {` + minimalSource + "  vm_name = var.name\n}",
		"build.pkr.json":         `{"build": {"sources": ["source.qemu.a"]}}`,
		"x.auto.pkrvars.hcl":     `name = "from-auto"`,
		"y.auto.pkrvars.json":    `{"name": "from-auto-json"}`,
		"other.pkrvars.hcl":      `name = "not-auto"`,
		"README.md":              "not read",
		"sub/ignored.pkr.hcl":    "this is not ( valid",
		"notes.pkr.hcl.disabled": "neither is this (",
	})
	tmpl, diags := Load(dir, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	// Auto var files apply in name order: the .json one comes last.
	if got := onlyBuild(t, tmpl).Source.VMName; got != "from-auto-json" {
		t.Errorf("vm_name = %q", got)
	}
	if tmpl.Root != dir || !filepath.IsAbs(tmpl.Root) {
		t.Errorf("root %q, want %q", tmpl.Root, dir)
	}

	// A single file: its directory is path.root, auto var files are not
	// read (Packer only reads them for a directory).
	single := filepath.Join(dir, "single.pkr.hcl")
	os.WriteFile(single, []byte(`variable "name" { default = "dflt" }
source "qemu" "a" {`+minimalSource+`  vm_name = "${var.name}:${path.root}"
}
build { sources = ["source.qemu.a"] }`), 0o644)
	tmpl, diags = Load(single, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	if got := onlyBuild(t, tmpl).Source.VMName; got != "dflt:"+filepath.ToSlash(dir) {
		t.Errorf("vm_name = %q", got)
	}
}

func TestNotATemplate(t *testing.T) {
	dir := writeDir(t, map[string]string{"legacy.json": "{}", "empty/README": "x"})
	for path, want := range map[string]string{
		filepath.Join(dir, "legacy.json"): "No builders in the template", // read as a legacy JSON template
		filepath.Join(dir, "empty"):       "No template files in",
		filepath.Join(dir, "missing"):     "Cannot read template",
	} {
		tmpl, diags := Load(path, LoadOptions{})
		if !diags.HasErrors() {
			t.Errorf("%s: no error", path)
			continue
		}
		wantContains(t, render(tmpl, diags), want, ".pkr.hcl")
	}
}

func TestSyntaxErrorPosition(t *testing.T) {
	out, diags := loadErr(t, "source \"qemu\" \"a\" {\n  iso_url = \"x\n}\n", LoadOptions{})
	if diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
		t.Errorf("subject %v", diags[0].Subject)
	}
	wantContains(t, out, "main.pkr.hcl:2:15: Error: Invalid multi-line string")
}

func TestUnknownKeyAndBlocks(t *testing.T) {
	out, diags := loadErr(t, `source "qemu" "a" {`+minimalSource+`  boot_wiat = "5s"
}
build { sources = ["source.qemu.a"] }`, LoadOptions{})
	wantContains(t, out, "main.pkr.hcl:5:3: Error: Unsupported argument", `Did you mean "boot_wait"?`)
	errorAt(t, diags, "Unsupported argument", 5, 3)

	out, _ = loadErr(t, `data "amazon-ami" "x" {}`, LoadOptions{})
	wantContains(t, out, "Data sources are not supported by kiln", "source and build blocks")
	out, _ = loadErr(t, `builds {}`, LoadOptions{})
	wantContains(t, out, `Unsupported block type`, `Did you mean "build"?`, "A kiln template may contain")
	out, _ = loadErr(t, `foo = 1`, LoadOptions{})
	wantContains(t, out, "Unsupported argument", "A kiln template may contain")
}

func TestPackerBlock(t *testing.T) {
	tmpl := mustLoad(t, `
packer {
  required_version = ">= 1.8.0"
  required_plugins {
    qemu = {
      version = ">= 1.0.0"
      source  = "github.com/hashicorp/qemu"
    }
  }
}`, LoadOptions{})
	if len(tmpl.Warnings) != 1 || tmpl.Warnings[0].Summary != "kiln builds qemu itself; plugin requirements are ignored" {
		t.Errorf("warnings: %s", render(tmpl, tmpl.Warnings))
	}
}

func TestJSONTemplate(t *testing.T) {
	dir := writeDir(t, map[string]string{"t.pkr.json": `{
  "variable": {"user": {"default": "admin"}},
  "source": {"qemu": {"j": {
    "iso_url": "x.iso", "iso_checksum": "none",
    "ssh_username": "${var.user}", "boot_command": ["{{ .HTTPIP }}"]
  }}},
  "build": {"sources": ["source.qemu.j"]}
}`})
	tmpl, diags := Load(dir, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	q := onlyBuild(t, tmpl).Source
	if q.SSHUsername != "admin" || q.BootCommand[0] != "{{ .HTTPIP }}" {
		t.Errorf("user %q boot %q", q.SSHUsername, q.BootCommand)
	}
}

func TestHTTPIPPassThrough(t *testing.T) {
	tmpl := mustLoad(t, `
source "qemu" "a" {`+minimalSource+`
  boot_command = ["<esc><wait> auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<enter>"]
  qemuargs     = [["-fw_cfg", "name=opt/x,string={{ .HTTPIP }}"]]
  http_content = { "/user-data" = "#cloud-config\n{{ .SSHPublicKey }}" }
}
build { sources = ["source.qemu.a"] }`, LoadOptions{})
	q := onlyBuild(t, tmpl).Source
	if q.BootCommand[0] != "<esc><wait> auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<enter>" ||
		q.QEMUArgs[0][1] != "name=opt/x,string={{ .HTTPIP }}" ||
		q.HTTPContent["/user-data"] != "#cloud-config\n{{ .SSHPublicKey }}" {
		t.Errorf("templates altered: %q %q %q", q.BootCommand, q.QEMUArgs, q.HTTPContent)
	}
}

// TestGoldenDiagnostics pins the full text of two diagnostics. Run with
// -update after an intended change of format.
func TestGoldenDiagnostics(t *testing.T) {
	cases := map[string]string{
		"unknown_key":  "source \"qemu\" \"a\" {\n\tiso_urll     = \"https://example.org/x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"root\"\n}\nbuild { sources = [\"source.qemu.a\"] }\n",
		"bad_checksum": "source \"qemu\" \"a\" {\n  iso_url      = \"x.iso\"\n  iso_checksum = \"sha256:1234\"\n  ssh_username = \"root\"\n}\nbuild { sources = [\"source.qemu.a\"] }\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeDir(t, map[string]string{"main.pkr.hcl": src})
			// Relative paths keep the golden text free of temp dir names.
			t.Chdir(dir)
			tmpl, diags := Load("main.pkr.hcl", LoadOptions{})
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, tmpl.Files, diags, false); err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, filepath.Join(testdataDir, name+".golden"), buf.Bytes())
		})
	}
}

var testdataDir = func() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "testdata")
}()

func TestWriteDiagnosticsColorAndNoSubject(t *testing.T) {
	var buf bytes.Buffer
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Undefined -var variable", Detail: "line one\n\nline two"},
		{Severity: hcl.DiagWarning, Summary: "w", Subject: &hcl.Range{Filename: "gone.hcl", Start: hcl.Pos{Line: 3, Column: 2}}},
	}
	if err := WriteDiagnostics(&buf, nil, diags, true); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	wantContains(t, out, "\x1b[1;31mError\x1b[0m: \x1b[1mUndefined -var variable", "  line one\n\n  line two\n", "gone.hcl:3:2: \x1b[1;33mWarning")
	if strings.Contains(out, " | ") {
		t.Errorf("snippet printed without source:\n%s", out)
	}
}

func TestPackerOnlyOptions(t *testing.T) {
	src := `source "qemu" "a" {` + minimalSource + `  ssh_pty      = true
  floppy_files = ["ks.cfg"]
  qemu_img_args {
    convert = ["-o", "preallocation=full"]
  }
}
build { sources = ["source.qemu.a"] }`
	out, diags := loadErr(t, src, LoadOptions{})
	wantContains(t, out, "ssh_pty is ignored by kiln", "floppy_files is not supported by kiln", "cd_files", "qemu_img_args is not supported by kiln")
	errorAt(t, diags, "floppy_files", 6, 3)

	tmpl := mustLoad(t, `source "qemu" "a" {`+minimalSource+`  ssh_pty = true
}
build { sources = ["source.qemu.a"] }`, LoadOptions{})
	wantContains(t, render(tmpl, tmpl.Warnings), "main.pkr.hcl:5:3: Warning: ssh_pty is ignored by kiln")
}
