package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// varTemplate puts var.v into vm_name so the winning value is visible.
const varTemplate = `
variable "v" {
  type    = string
  default = "default"
}
source "qemu" "a" {` + minimalSource + `  vm_name = var.v
}
build { sources = ["source.qemu.a"] }
`

func TestVariablePrecedence(t *testing.T) {
	vmName := func(t *testing.T, files map[string]string, opts LoadOptions) string {
		t.Helper()
		files["main.pkr.hcl"] = varTemplate
		dir := writeDir(t, files)
		for i, f := range opts.VarFiles {
			opts.VarFiles[i] = filepath.Join(dir, f)
		}
		tmpl, diags := Load(dir, opts)
		if diags.HasErrors() {
			t.Fatal(render(tmpl, diags))
		}
		return onlyBuild(t, tmpl).Source.VMName
	}
	env := []string{"PKR_VAR_v=env", "OTHER=x"}
	auto := map[string]string{"a.auto.pkrvars.hcl": `v = "auto"`}
	withFiles := func() map[string]string {
		return map[string]string{
			"a.auto.pkrvars.hcl": `v = "auto"`,
			"one.pkrvars.hcl":    `v = "file1"`,
			"two.pkrvars.json":   `{"v": "file2"}`,
		}
	}
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  string
	}{
		{"default", map[string]string{}, LoadOptions{}, "default"},
		{"env beats default", map[string]string{}, LoadOptions{Env: env}, "env"},
		{"auto file beats env", auto, LoadOptions{Env: env}, "auto"},
		{"var files beat auto, in order", withFiles(), LoadOptions{Env: env, VarFiles: []string{"one.pkrvars.hcl", "two.pkrvars.json"}}, "file2"},
		{"var file order matters", withFiles(), LoadOptions{Env: env, VarFiles: []string{"two.pkrvars.json", "one.pkrvars.hcl"}}, "file1"},
		{"-var beats everything", withFiles(), LoadOptions{Env: env, VarFiles: []string{"one.pkrvars.hcl"}, Vars: map[string]string{"v": "flag"}}, "flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := vmName(t, tc.files, tc.opts); got != tc.want {
				t.Errorf("vm_name = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVarTypeConversion(t *testing.T) {
	src := `
variable "mirrors" { type = list(string) }
variable "mem"     { type = number }
variable "efi"     { type = bool }
variable "size"    { default = 10 }
variable "raw"     {}
variable "tags"    { type = map(string) }
source "qemu" "a" {` + minimalSource + `
  iso_urls  = var.mirrors
  iso_url   = null
  memory    = var.mem + 1
  efi_boot  = var.efi
  disk_size = "${var.size * 2}G"
  vm_name   = "${var.raw}-${var.tags["k"]}"
}
build { sources = ["source.qemu.a"] }
`
	src = strings.Replace(src, `  iso_url      = "https://example.org/debian.iso"`+"\n", "", 1)
	tmpl := mustLoad(t, src, LoadOptions{Vars: map[string]string{
		"mirrors": `["http://a/x.iso", "http://b/x.iso"]`,
		"mem":     "1023",
		"efi":     "true",
		"size":    "21",
		"raw":     `["not", "parsed"]`,
		"tags":    `{k = "v"}`,
	}})
	q := onlyBuild(t, tmpl).Source
	if !slices.Equal(q.ISOURLs, []string{"http://a/x.iso", "http://b/x.iso"}) {
		t.Errorf("iso_urls = %q", q.ISOURLs)
	}
	if q.Memory != 1024 || !q.EFIBoot || q.DiskSize != "42G" {
		t.Errorf("memory %d efi %v disk_size %q", q.Memory, q.EFIBoot, q.DiskSize)
	}
	// An untyped variable without default takes -var literally.
	if q.VMName != `["not", "parsed"]-v` {
		t.Errorf("vm_name = %q", q.VMName)
	}

	out, _ := loadErr(t, `variable "n" { type = number }`, LoadOptions{Vars: map[string]string{"n": "many"}})
	wantContains(t, out, "Invalid value for variable n from -var", "a number is required", "<value for var.n from -var>:1:1:", "   1 | many")
	out, _ = loadErr(t, `variable "b" { type = bool }`, LoadOptions{Vars: map[string]string{"b": "yes"}})
	wantContains(t, out, "var.b has type bool")
}

func TestVariableErrors(t *testing.T) {
	out, diags := loadErr(t, `
variable "iso_url" {
  type = string
}
`, LoadOptions{Vars: map[string]string{"iso_ur": "x"}})
	wantContains(t, out, `Undefined -var variable`, `Did you mean "iso_url"?`)
	// The unset variable is only reported once the -var error is fixed:
	// the first pass stops at value errors.
	_ = diags

	out, diags = loadErr(t, "\n\nvariable \"iso_url\" {\n  type = string\n}\n", LoadOptions{})
	wantContains(t, out, `Unset variable "iso_url"`, "-var iso_url=", "PKR_VAR_iso_url")
	errorAt(t, diags, "Unset variable", 3, 1)

	out, _ = loadErr(t, `variable "x" {
  type    = number
  default = "abc"
}`, LoadOptions{})
	wantContains(t, out, "Invalid default value for variable x")

	out, _ = loadErr(t, `variable "x" {}
variable "x" {}`, LoadOptions{Vars: map[string]string{"x": "1"}})
	wantContains(t, out, "Duplicate variable x")

	dir := writeDir(t, map[string]string{
		"main.pkr.hcl":    `variable "x" { default = "a" }`,
		"bad.pkrvars.hcl": `variable "x" {}`,
	})
	tmpl, diags := Load(dir, LoadOptions{VarFiles: []string{filepath.Join(dir, "bad.pkrvars.hcl")}})
	wantContains(t, render(tmpl, diags), "Variable declaration in a var file", "x = <value>")
}

func TestUndeclaredInVarFileWarns(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"main.pkr.hcl":       varTemplate,
		"x.auto.pkrvars.hcl": "vv = \"typo\"\nother = 1\n",
	})
	tmpl, diags := Load(dir, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	if len(tmpl.Warnings) != 2 {
		t.Fatalf("want 2 warnings, got %s", render(tmpl, tmpl.Warnings))
	}
	wantContains(t, render(tmpl, tmpl.Warnings), "Undefined variable vv", `Did you mean "v"?`, "x.auto.pkrvars.hcl:1:1", "Undefined variable other")
}

func TestVariableValidation(t *testing.T) {
	src := `
variable "disk" {
  type    = string
  default = "20G"
  validation {
    condition     = can(regex("^[0-9]+[GM]$", var.disk))
    error_message = "The disk size must look like 20G."
  }
  validation {
    condition     = length(var.disk) < 6
    error_message = "The disk size is too long."
  }
}
`
	mustLoad(t, src, LoadOptions{})
	out, diags := loadErr(t, src, LoadOptions{Vars: map[string]string{"disk": "big"}})
	wantContains(t, out, "Invalid value for variable disk", "The disk size must look like 20G.", "from -var")
	errorAt(t, diags, "Invalid value for variable disk", 6, 21)
	if strings.Contains(out, "too long") {
		t.Errorf("second rule should pass:\n%s", out)
	}
	out, _ = loadErr(t, src, LoadOptions{Vars: map[string]string{"disk": "123456G"}})
	wantContains(t, out, "The disk size is too long.")

	out, _ = loadErr(t, `
variable "a" {
  default = "x"
  validation {
    condition     = var.b == "x"
    error_message = "lowercase message"
  }
}`, LoadOptions{})
	wantContains(t, out, "can only refer to the variable itself", "must be at least one full sentence")
}

func TestSensitiveCollection(t *testing.T) {
	tmpl := mustLoad(t, `
variable "pw" {
  type      = string
  sensitive = true
}
variable "keys" {
  type      = map(string)
  sensitive = true
  default   = { a = "key-a", b = "key-b", empty = "" }
}
variable "list" {
  type      = list(string)
  sensitive = true
  default   = ["l1"]
}
variable "public" { default = "visible" }
local "token" {
  expression = "tok-${var.pw}"
  sensitive  = true
}
source "qemu" "a" {`+minimalSource+`  ssh_password = var.pw
}
build { sources = ["source.qemu.a"] }
`, LoadOptions{Env: []string{"PKR_VAR_pw=hunter2"}})
	for _, want := range []string{"hunter2", "key-a", "key-b", "l1", "tok-hunter2"} {
		if !slices.Contains(tmpl.Sensitive, want) {
			t.Errorf("Sensitive %q lacks %q", tmpl.Sensitive, want)
		}
	}
	for _, notWant := range []string{"visible", ""} {
		if slices.Contains(tmpl.Sensitive, notWant) {
			t.Errorf("Sensitive %q contains %q", tmpl.Sensitive, notWant)
		}
	}
	if b := onlyBuild(t, tmpl); !slices.Equal(b.Sensitive, tmpl.Sensitive) {
		t.Errorf("build sensitive %q != template %q", b.Sensitive, tmpl.Sensitive)
	}
	byName := map[string]*Variable{}
	for _, v := range tmpl.Variables {
		byName[v.Name] = v
	}
	if v := byName["pw"]; v.Value != "<sensitive>" || !v.Sensitive || v.Type != "string" {
		t.Errorf("pw = %+v", v)
	}
	if v := byName["public"]; v.Value != "visible" {
		t.Errorf("public = %+v", v)
	}
	if v := byName["list"]; v.Type != "list(string)" {
		t.Errorf("list type = %q", v.Type)
	}
}

func TestVariablesBlockShortForm(t *testing.T) {
	tmpl := mustLoad(t, `
variables {
  name = "short"
}
source "qemu" "a" {`+minimalSource+`  vm_name = var.name
}
build { sources = ["source.qemu.a"] }
`, LoadOptions{})
	if got := onlyBuild(t, tmpl).Source.VMName; got != "short" {
		t.Errorf("vm_name = %q", got)
	}
}

var _ = hcl.DiagError
