package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func buildNames(bs []*Build) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

const twoSources = `
source "qemu" "debian" {` + minimalSource + `}
source "qemu" "ubuntu" {` + minimalSource + `}
`

func TestBuildNamingAndFilter(t *testing.T) {
	tmpl := mustLoad(t, twoSources+`
build {
  sources = ["source.qemu.debian", "qemu.ubuntu"]
}
build {
  name    = "web"
  sources = ["source.qemu.debian"]
  source "source.qemu.ubuntu" {
    name = "jammy"
  }
}
`, LoadOptions{})
	want := []string{"qemu.debian", "qemu.ubuntu", "web.qemu.debian", "web.qemu.jammy"}
	if got := buildNames(tmpl.Builds); !slices.Equal(got, want) {
		t.Fatalf("names = %q, want %q", got, want)
	}
	jammy := tmpl.Builds[3]
	if jammy.BuildName != "web" || jammy.SourceName != "jammy" || jammy.SourceType != "qemu" {
		t.Errorf("jammy = %+v", jammy)
	}
	// packer_build_name is the source label, so the defaults use "ubuntu".
	if jammy.Source.OutputDirectory != "output-ubuntu" || jammy.Source.VMName != "packer-ubuntu" {
		t.Errorf("defaults use %q %q", jammy.Source.OutputDirectory, jammy.Source.VMName)
	}

	tests := []struct {
		only, except []string
		want         []string
	}{
		{nil, nil, want},
		{[]string{"qemu.debian"}, nil, []string{"qemu.debian"}},
		{[]string{"*.debian"}, nil, []string{"qemu.debian", "web.qemu.debian"}},
		{[]string{"qemu.*"}, nil, []string{"qemu.debian", "qemu.ubuntu"}},
		{[]string{"web.*"}, nil, []string{"web.qemu.debian", "web.qemu.jammy"}},
		{[]string{"*.{jammy,ubuntu}"}, nil, []string{"qemu.ubuntu", "web.qemu.jammy"}},
		{[]string{"qemu.[du]*"}, nil, []string{"qemu.debian", "qemu.ubuntu"}},
		{[]string{"qemu.[!d]*"}, nil, []string{"qemu.ubuntu"}},
		{[]string{"qemu.debia?"}, nil, []string{"qemu.debian"}},
		{nil, []string{"web.*"}, []string{"qemu.debian", "qemu.ubuntu"}},
		{[]string{"*"}, []string{"*.debian"}, []string{"qemu.ubuntu", "web.qemu.jammy"}},
		{[]string{"nomatch"}, nil, nil},
	}
	for _, tc := range tests {
		got, err := Filter(tmpl.Builds, tc.only, tc.except)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(buildNames(got), tc.want) {
			t.Errorf("only %q except %q = %q, want %q", tc.only, tc.except, buildNames(got), tc.want)
		}
	}
	if _, err := Filter(tmpl.Builds, []string{"qemu.[abc"}, nil); err == nil || !strings.Contains(err.Error(), "-only") {
		t.Errorf("bad glob: err = %v", err)
	}
}

func TestSourceOverrideInBuild(t *testing.T) {
	tmpl := mustLoad(t, `
source "qemu" "base" {`+minimalSource+`}
build {
  source "source.qemu.base" {
    name      = "big"
    disk_size = "100G"
    vm_name   = "${source.name}-${source.type}.qcow2"
  }
  source "source.qemu.base" {
    name = "small"
    disk_size = "5G"
  }
  provisioner "shell" {
    inline = ["echo ${source.name}"]
  }
}
`, LoadOptions{})
	if len(tmpl.Builds) != 2 {
		t.Fatalf("builds %q", buildNames(tmpl.Builds))
	}
	big, small := tmpl.Builds[0].Source, tmpl.Builds[1].Source
	if big.DiskSizeBytes != 100<<30 || small.DiskSizeBytes != 5<<30 {
		t.Errorf("sizes %d %d", big.DiskSizeBytes, small.DiskSizeBytes)
	}
	if big.VMName != "big-qemu.qcow2" || small.VMName != "packer-base" {
		t.Errorf("vm names %q %q", big.VMName, small.VMName)
	}
	if got := tmpl.Builds[1].Provisioners[0].Shell.Inline[0]; got != "echo small" {
		t.Errorf("provisioner evaluated with source.name %q", got)
	}

	// Packer does not let a build-level source block override an option
	// the top-level block sets.
	out, diags := loadErr(t, `
source "qemu" "base" {`+minimalSource+`}
build {
  source "source.qemu.base" {
    ssh_username = "other"
  }
}
`, LoadOptions{})
	wantContains(t, out, "Duplicate argument", "leaves unset")
	errorAt(t, diags, "Duplicate argument", 9, 5)
}

func TestSkippedAndUnknownSources(t *testing.T) {
	tmpl := mustLoad(t, `
source "virtualbox-iso" "vb" {
  anything = "goes"
}
source "amazon-ebs" "aws" {}
source "qemu" "q" {`+minimalSource+`}
build {
  sources = ["source.virtualbox-iso.vb", "source.qemu.q", "source.amazon-ebs.aws"]
}
`, LoadOptions{})
	if got := buildNames(tmpl.Builds); !slices.Equal(got, []string{"qemu.q"}) {
		t.Errorf("builds %q", got)
	}
	out := render(tmpl, tmpl.Warnings)
	wantContains(t, out,
		"kiln builds only qemu sources; skipping source.virtualbox-iso.vb",
		"kiln builds only qemu sources; skipping source.amazon-ebs.aws",
		"main.pkr.hcl:12:14:")

	out, diags := loadErr(t, `
source "qemu" "debian" {`+minimalSource+`}
build {
  sources = ["source.qemu.debian", "source.qemu.debain"]
}
`, LoadOptions{})
	wantContains(t, out, "Unknown source source.qemu.debain", `Did you mean "source.qemu.debian"?`)
	errorAt(t, diags, "Unknown source", 8, 36)

	out, _ = loadErr(t, `build { sources = ["debian"] }`, LoadOptions{})
	wantContains(t, out, "Invalid source reference")
	out, _ = loadErr(t, `build {}`, LoadOptions{})
	wantContains(t, out, "Missing source reference")
}

func TestProvisioners(t *testing.T) {
	tmpl := mustLoad(t, twoSources+`
build {
  sources = ["source.qemu.debian", "source.qemu.ubuntu"]
  provisioner "shell" {
    name         = "setup"
    pause_before = "10s"
    max_retries  = 3
    timeout      = "5m"
    inline       = ["echo {{ .HTTPIP }}:{{ .HTTPPort }}", "echo ${build.name}"]
    environment_vars = ["A=b"]
  }
  provisioner "file" {
    only        = ["qemu.ubuntu"]
    source      = "files/app.conf"
    destination = "/etc/app.conf"
  }
  provisioner "shell-local" {
    except = ["qemu.ubuntu"]
    inline = ["echo local"]
  }
  provisioner "breakpoint" {
    note = "look around"
  }
  provisioner "shell" {
    script   = "scripts/cleanup.sh"
    override = { "qemu.debian" = { script = "x" } }
  }
  error-cleanup-provisioner "shell-local" {
    command = "echo failed"
  }
}
`, LoadOptions{})
	if len(tmpl.Builds) != 2 {
		t.Fatalf("builds %q", buildNames(tmpl.Builds))
	}
	types := func(ps []*Provisioner) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Type)
		}
		return out
	}
	deb, ubu := tmpl.Builds[0], tmpl.Builds[1]
	if got := types(deb.Provisioners); !slices.Equal(got, []string{"shell", "shell-local", "breakpoint", "shell"}) {
		t.Errorf("debian provisioners %q", got)
	}
	if got := types(ubu.Provisioners); !slices.Equal(got, []string{"shell", "file", "breakpoint", "shell"}) {
		t.Errorf("ubuntu provisioners %q", got)
	}
	p := deb.Provisioners[0]
	if p.Name != "setup" || p.PauseBefore != 10*time.Second || p.MaxRetries != 3 || p.Timeout != 5*time.Minute {
		t.Errorf("meta = %+v", p)
	}
	if p.Range.Start.Line != 15 {
		t.Errorf("range %v", p.Range)
	}
	// Go-template text passes through untouched.
	if !slices.Equal(p.Shell.Inline, []string{"echo {{ .HTTPIP }}:{{ .HTTPPort }}", "echo "}) {
		t.Errorf("inline = %q", p.Shell.Inline)
	}
	f := ubu.Provisioners[1]
	if f.File.Source != "files/app.conf" || f.File.Direction != "upload" || !slices.Equal(f.Only, []string{"qemu.ubuntu"}) {
		t.Errorf("file = %+v", f.File)
	}
	if deb.Provisioners[3].Shell.Script != "scripts/cleanup.sh" {
		t.Errorf("script path changed: %q", deb.Provisioners[3].Shell.Script)
	}
	if len(deb.ErrorCleanup) != 1 || deb.ErrorCleanup[0].ShellLocal.Command != "echo failed" {
		t.Errorf("error cleanup = %+v", deb.ErrorCleanup)
	}
	wantContains(t, render(tmpl, tmpl.Warnings), "override is ignored by kiln")
}

func TestProvisionerErrors(t *testing.T) {
	build := func(body string) string {
		return `source "qemu" "a" {` + minimalSource + "}\nbuild {\n  sources = [\"source.qemu.a\"]\n" + body + "\n}\n"
	}
	tests := []struct {
		body  string
		wants []string
	}{
		{`provisioner "ansible" { playbook_file = "x.yml" }`, []string{"provisioner type ansible is not supported by kiln; supported: shell, file, shell-local, breakpoint", "main.pkr.hcl:8:13"}},
		{`provisioner "shel" { inline = ["x"] }`, []string{`Did you mean "shell"?`}},
		{`provisioner "shell" {}`, []string{"shell provisioner needs one of inline, script or scripts"}},
		{`provisioner "shell" {
  inline = ["a"]
  script = "b"
}`, []string{"shell provisioner takes only one of inline, script or scripts"}},
		{`provisioner "shell" { inlin = ["a"] }`, []string{`Did you mean "inline"?`}},
		{`provisioner "shell-local" {}`, []string{"shell-local provisioner needs one of command, inline, script or scripts"}},
		{`provisioner "file" { destination = "/x" }`, []string{"file provisioner needs source, sources or content"}},
		{`provisioner "file" {
  source      = "a"
  content     = "b"
  destination = "/x"
}`, []string{"takes only one of source, sources or content"}},
		{`provisioner "file" { source = "a" }`, []string{`The argument "destination" is required`}},
		{`provisioner "file" {
  source      = "a"
  destination = "/x"
  direction   = "sideways"
}`, []string{"Invalid file provisioner direction", "main.pkr.hcl:11:17"}},
		{`provisioner "shell" {
  inline       = ["a"]
  pause_before = "soon"
}`, []string{"Invalid pause_before", "main.pkr.hcl:10:18"}},
		{`provisioner "shell" {
  inline = ["a"]
  only   = ["qemu.a"]
  except = ["qemu.b"]
}`, []string{"Only one of only or except may be set"}},
		{`error-cleanup-provisioner "shell" { inline = ["a"] }
error-cleanup-provisioner "shell" { inline = ["b"] }`, []string{"Only one error-cleanup-provisioner is allowed"}},
	}
	for _, tc := range tests {
		out, _ := loadErr(t, build(tc.body), LoadOptions{})
		wantContains(t, out, tc.wants...)
	}
}

func TestPostProcessors(t *testing.T) {
	tmpl := mustLoad(t, twoSources+`
build {
  sources = ["source.qemu.debian", "source.qemu.ubuntu"]
  post-processor "checksum" {
    name                = "sums"
    keep_input_artifact = true
    checksum_types      = ["sha256"]
    output              = "${source.name}.sum"
  }
  post-processors {
    post-processor "compress" {
      only   = ["qemu.ubuntu"]
      output = "out.tar.gz"
    }
    post-processor "manifest" {}
  }
}
`, LoadOptions{})
	deb, ubu := tmpl.Builds[0], tmpl.Builds[1]
	if len(deb.PostProcessors) != 2 || len(deb.PostProcessors[1]) != 1 || len(ubu.PostProcessors[1]) != 2 {
		t.Fatalf("chains: debian %d/%d ubuntu %d", len(deb.PostProcessors), len(deb.PostProcessors[1]), len(ubu.PostProcessors[1]))
	}
	pp := deb.PostProcessors[0][0]
	if pp.Type != "checksum" || pp.Name != "sums" || !pp.KeepInputArtifact {
		t.Errorf("pp = %+v", pp)
	}
	// The body is left for the post-processor to decode, with this
	// source's context, and without the meta-arguments.
	var cfg struct {
		ChecksumTypes []string `hcl:"checksum_types"`
		Output        string   `hcl:"output"`
	}
	if diags := decodeFlat(pp.Body, pp.EvalContext, &cfg); diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Output != "debian.sum" || !slices.Equal(cfg.ChecksumTypes, []string{"sha256"}) {
		t.Errorf("cfg = %+v", cfg)
	}
	if got := ubu.PostProcessors[1][0]; got.Type != "compress" || !slices.Equal(got.Only, []string{"qemu.ubuntu"}) {
		t.Errorf("ubuntu chain = %+v", got)
	}
	if v := ubu.PostProcessors[0][0].EvalContext.Variables["source"].GetAttr("name"); v != cty.StringVal("ubuntu") {
		t.Errorf("ubuntu eval context source.name = %#v", v)
	}
}

func TestNullMeansUnset(t *testing.T) {
	tmpl := mustLoad(t, `
variable "mirror" { default = "" }
source "qemu" "a" {`+minimalSource+`  vm_name  = var.mirror != "" ? var.mirror : null
  cpus     = null
}
build { sources = ["source.qemu.a"] }
`, LoadOptions{})
	q := onlyBuild(t, tmpl).Source
	if q.VMName != "packer-a" || q.CPUs != 1 {
		t.Errorf("vm_name %q cpus %d", q.VMName, q.CPUs)
	}
}

var _ hcl.Diagnostics
