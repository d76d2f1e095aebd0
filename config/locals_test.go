package config

import "testing"

func TestLocalsAnyOrderAcrossFiles(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"a.pkr.hcl": `
locals {
  name = "${local.prefix}-${local.version}"
}
source "qemu" "a" {` + minimalSource + `  vm_name = local.name
}
build { sources = ["source.qemu.a"] }
`,
		"b.pkr.hcl": `
local "version" {
  expression = "v${var.major}"
}
locals {
  prefix = upper(local.distro)
  distro = "debian"
}
variable "major" { default = 12 }
`,
	})
	tmpl, diags := Load(dir, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	if got := onlyBuild(t, tmpl).Source.VMName; got != "DEBIAN-v12" {
		t.Errorf("vm_name = %q", got)
	}
}

func TestLocalsCycle(t *testing.T) {
	out, diags := loadErr(t, `
locals {
  a = "${local.b}x"
  b = local.c
  c = local.a
  ok = "fine"
}
`, LoadOptions{})
	wantContains(t, out, "Circular reference between locals", "local.a → local.b → local.c → local.a")
	errorAt(t, diags, "Circular reference", 3, 3)

	out, _ = loadErr(t, `locals {
  self = local.self
}`, LoadOptions{})
	wantContains(t, out, "local.self → local.self")

	out, _ = loadErr(t, `locals { a = 1 }
locals { a = 2 }`, LoadOptions{})
	wantContains(t, out, "Duplicate local a")
}
