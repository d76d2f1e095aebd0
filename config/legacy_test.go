package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// legacySource is the smallest valid qemu builder body (without braces).
const legacySource = `"type": "qemu",
      "iso_url": "https://example.org/debian.iso",
      "iso_checksum": "none",
      "ssh_username": "root"`

// loadJSON loads a one-file legacy template named build.json.
func loadJSON(t *testing.T, src string, opts LoadOptions) (*Template, hcl.Diagnostics) {
	t.Helper()
	dir := writeDir(t, map[string]string{"build.json": src})
	if opts.Now.IsZero() {
		opts.Now = fixedNow
	}
	return Load(filepath.Join(dir, "build.json"), opts)
}

func mustLoadJSON(t *testing.T, src string, opts LoadOptions) *Template {
	t.Helper()
	tmpl, diags := loadJSON(t, src, opts)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%s", render(tmpl, diags))
	}
	return tmpl
}

func loadJSONErr(t *testing.T, src string, opts LoadOptions) (string, hcl.Diagnostics) {
	t.Helper()
	tmpl, diags := loadJSON(t, src, opts)
	if !diags.HasErrors() {
		t.Fatalf("expected errors, got none (warnings: %s)", render(tmpl, diags))
	}
	return render(tmpl, diags), diags
}

// vmName loads a template whose builder's vm_name is expr and returns
// the rendered vm_name.
func vmName(t *testing.T, vars, expr string, opts LoadOptions) string {
	t.Helper()
	src := fmt.Sprintf(`{
  "variables": {%s},
  "builders": [{
      %s,
      "name": "deb-12",
      "vm_name": %q
  }]
}`, vars, legacySource, expr)
	return onlyBuild(t, mustLoadJSON(t, src, opts)).Source.VMName
}

func TestLegacyPlaceholders(t *testing.T) {
	wd, _ := os.Getwd()
	opts := LoadOptions{Env: []string{"HOME_DIR=/home/me"}, Now: fixedNow}
	vars := `"a": "Alpha", "b": "{{user ` + "`a`" + `}}-b", "h": "{{env ` + "`HOME_DIR`" + `}}", "csv": "x,y,z"`
	for _, tc := range []struct{ expr, want string }{
		{"{{user `a`}}", "Alpha"},
		{`{{user "a"}}`, "Alpha"},
		{"{{user `b`}}", "Alpha-b"}, // a variable using another one
		{"{{user `h`}}", "/home/me"},
		{"{{timestamp}}", "1714975689"},
		{`{{isotime "2006-01-02 15:04"}}`, "2024-05-06 06:08"}, // UTC, Go layout
		{"{{isotime}}", "2024-05-06T06:08:09Z"},
		{"{{build_name}}/{{build_type}}", "deb-12/qemu"},
		{"{{pwd}}", wd},
		{"{{split (user `csv`) \",\" 1}}", "y"},
		{"{{replace \"a\" \"A\" 1 \"banana\"}}", "bAnana"},
		{"{{replace_all \"a\" \"A\" \"banana\"}}", "bAnAnA"},
		{"{{lower (user `a`)}}-{{user `a` | upper}}", "alpha-ALPHA"},
		{"{{clean_resource_name \"My_Image 1.0\"}}", "my-image-1-0"},
		// Rendered later (boot command, provisioners): kept byte for byte.
		{"http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg {{.Name}}", "http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg {{.Name}}"},
		{"{{if .Sudo}}sudo {{end}}{{ .Path }}", "{{if .Sudo}}sudo {{end}}{{ .Path }}"},
		{"key={{ .SSHPublicKey | urlquery }} {{user `a`}}", "key={{ .SSHPublicKey | urlquery }} Alpha"},
		{"no placeholders ${HOME}", "no placeholders ${HOME}"},
	} {
		if got := vmName(t, vars, tc.expr, opts); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
		}
	}

	got := vmName(t, vars, "{{template_dir}}", opts)
	if !filepath.IsAbs(got) || !strings.HasPrefix(filepath.Base(got), "") {
		t.Errorf("template_dir = %q, want an absolute directory", got)
	}
	id := vmName(t, vars, "{{uuid}}", opts)
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("uuid = %q", id)
	}
}

func TestLegacyTemplateDirIsTheTemplatesDirectory(t *testing.T) {
	dir := writeDir(t, map[string]string{"sub/build.json": `{"builders": [{` + legacySource + `, "vm_name": "{{template_dir}}"}]}`})
	tmpl, diags := Load(filepath.Join(dir, "sub", "build.json"), LoadOptions{Now: fixedNow})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	if got := onlyBuild(t, tmpl).Source.VMName; got != filepath.Join(dir, "sub") {
		t.Errorf("template_dir = %q, want %q", got, filepath.Join(dir, "sub"))
	}
}

func TestLegacyPlaceholderErrors(t *testing.T) {
	for _, tc := range []struct{ vars, expr, want string }{
		{``, "{{env `HOME`}}", "env can only be used in the default value of a variable"},
		{`"name": "x"`, "{{user `nmae`}}", `variable "nmae" is not declared in "variables"; did you mean "name"?`},
		{``, "{{nosuch}}", `function "nosuch" not defined`},
		{``, "{{split \"a,b\" \",\" 5}}", "no part 5"},
		{``, "{{user `x`", "unclosed action"},
		{`"v": "{{build_name}}"`, "x", "build_name is not available in variables"},
		{`"v": "{{user ` + "`v`" + `}}"`, "x", "refers to itself"},
	} {
		src := fmt.Sprintf(`{
  "variables": {%s},
  "builders": [{
      %s,
      "vm_name": %q
  }]
}`, tc.vars, legacySource, tc.expr)
		out, diags := loadJSONErr(t, src, LoadOptions{})
		wantContains(t, out, tc.want)
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject == nil {
				t.Errorf("%s: error %q has no position", tc.expr, d.Summary)
			}
		}
	}
}

func TestLegacyVariables(t *testing.T) {
	src := `{
  "variables": {
    "required": null,
    "password": "s3cret-default",
    "size": 8
  },
  "sensitive-variables": ["password"],
  "builders": [{
    ` + legacySource + `,
    "vm_name": "{{user ` + "`required`" + `}}-{{user ` + "`size`" + `}}",
    "ssh_password": "{{user ` + "`password`" + `}}"
  }]
}`
	_, diags := loadJSONErr(t, src, LoadOptions{})
	errorAt(t, diags, `Required variable "required" not set`, 3, 5)

	varFile := filepath.Join(t.TempDir(), "vars.json")
	if err := os.WriteFile(varFile, []byte(`{"size": "16", "password": "from-file"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := mustLoadJSON(t, src, LoadOptions{
		Vars:     map[string]string{"required": "req", "password": "from-flag"},
		VarFiles: []string{varFile},
		Env:      []string{"PKR_VAR_size=99"}, // HCL2-only in Packer: ignored
	})
	b := onlyBuild(t, tmpl)
	if b.Source.VMName != "req-16" || b.Source.SSHPassword != "from-flag" {
		t.Errorf("vm_name %q ssh_password %q, want req-16 and from-flag", b.Source.VMName, b.Source.SSHPassword)
	}
	if strings.Join(b.Sensitive, ",") != "from-flag" {
		t.Errorf("Sensitive = %q", b.Sensitive)
	}
	var shown []string
	for _, v := range tmpl.Variables {
		shown = append(shown, v.Name+"="+v.Value)
	}
	if got := strings.Join(shown, " "); got != "required=req password=<sensitive> size=16" {
		t.Errorf("Variables: %s", got)
	}

	out, _ := loadJSONErr(t, src, LoadOptions{Vars: map[string]string{"required": "r", "sise": "1"}})
	wantContains(t, out, "Undefined -var variable", `Did you mean "size"?`)
}

func TestLegacyBuilders(t *testing.T) {
	src := `{
  "description": "ignored",
  "min_packer_version": "1.5.0",
  "_comment": "keys starting with _ are comments",
  "builders": [
    {` + legacySource + `, "name": "one", "_note": "x"},
    {` + legacySource + `},
    {"type": "virtualbox-iso", "name": "vb", "guest_os_type": "Debian_64"}
  ]
}`
	tmpl := mustLoadJSON(t, src, LoadOptions{})
	if len(tmpl.Builds) != 2 || tmpl.Builds[0].Name != "one" || tmpl.Builds[1].Name != "qemu" || tmpl.Builds[1].SourceName != "qemu" {
		t.Fatalf("builds: %+v", tmpl.Builds)
	}
	out := render(tmpl, tmpl.Warnings)
	wantContains(t, out, "build.json:14:14: Warning: kiln builds only qemu builders; skipping builder vb (virtualbox-iso)")
}

func TestLegacyUnknownKeySuggests(t *testing.T) {
	src := `{
  "builders": [{
    ` + legacySource + `,
    "disk_sise": "10G"
  }]
}`
	out, diags := loadJSONErr(t, src, LoadOptions{})
	errorAt(t, diags, "Unsupported argument", 7, 5)
	wantContains(t, out, `build.json:7:5: Error: Unsupported argument`, `Did you mean "disk_size"?`, `"disk_sise": "10G"`)

	out, diags = loadJSONErr(t, `{"builders": [{`+legacySource+`}], "provisoners": []}`, LoadOptions{})
	errorAt(t, diags, "Unknown root level key", 4, 33)
	wantContains(t, out, `Did you mean "provisioners"?`)

	// Errors found by prepare point at the value in the JSON file too.
	_, diags = loadJSONErr(t, `{"builders": [{`+legacySource+`,
  "format": "vdi"}]}`, LoadOptions{})
	for _, d := range diags {
		if d.Severity == hcl.DiagError && (d.Subject == nil || d.Subject.Start.Line != 5) {
			t.Errorf("error %q not at line 5: %v", d.Summary, d.Subject)
		}
	}
}

func TestLegacyMalformedJSONPositions(t *testing.T) {
	for _, tc := range []struct {
		src       string
		line, col int
	}{
		{"{\n  \"builders\": [\n    {\"type\": \"qemu\",}\n  ]\n}", 3, 21}, // the }
		{"{\n  \"builders\": [\n    {\"type\" \"qemu\"}\n  ]\n}", 3, 13},
		{"{\n  \"variables\": {\"a\": \"b\"\n", 3, 1}, // the end of the file
	} {
		_, diags := loadJSON(t, tc.src, LoadOptions{})
		if !diags.HasErrors() {
			t.Errorf("%q: no error", tc.src)
			continue
		}
		d := diags[0]
		if d.Subject == nil || d.Subject.Start.Line != tc.line || d.Subject.Start.Column != tc.col {
			t.Errorf("%q: %q at %v, want %d:%d", tc.src, d.Summary, d.Subject, tc.line, tc.col)
		}
	}
	// A wrong type for a known key is positioned too.
	_, diags := loadJSON(t, "{\n  \"builders\": {\"type\": \"qemu\"}\n}", LoadOptions{})
	errorAt(t, diags, "Invalid builders", 2, 15)
	_, diags = loadJSON(t, "{\"builders\": [{"+legacySource+",\n \"cpus\": \"many\"}]}", LoadOptions{})
	errorAt(t, diags, "Unsuitable value", 5, 10)
}

func TestLegacyProvisioners(t *testing.T) {
	src := `{
  "builders": [
    {` + legacySource + `, "name": "a"},
    {` + legacySource + `, "name": "b"}
  ],
  "provisioners": [
    {"type": "shell", "inline": ["echo {{build_name}}"], "only": ["a"], "pause_before": "5s", "max_retries": 2, "timeout": "1m"},
    {"type": "shell", "inline": ["echo common"], "except": ["a"]},
    {"type": "shell", "inline": ["echo default"], "execute_command": "sudo {{ .Vars }} {{ .Path }}",
     "override": {"b": {"inline": ["echo overridden"], "remote_folder": "/var/tmp"}}}
  ],
  "error-cleanup-provisioner": {"type": "shell-local", "inline": ["echo cleanup {{build_name}}"]}
}`
	tmpl := mustLoadJSON(t, src, LoadOptions{})
	a, b := tmpl.Builds[0], tmpl.Builds[1]
	if len(a.Provisioners) != 2 || len(b.Provisioners) != 2 {
		t.Fatalf("provisioners: a %d b %d, want 2 each", len(a.Provisioners), len(b.Provisioners))
	}
	p := a.Provisioners[0]
	if p.Shell.Inline[0] != "echo a" || p.PauseBefore != 5*time.Second || p.MaxRetries != 2 || p.Timeout != time.Minute || p.Only[0] != "qemu.a" {
		t.Errorf("a's first provisioner: %+v %+v", p, p.Shell)
	}
	if got := a.Provisioners[1].Shell; got.Inline[0] != "echo default" || got.ExecuteCommand != "sudo {{ .Vars }} {{ .Path }}" || got.RemoteFolder != "" {
		t.Errorf("a's override leaked: %+v", got)
	}
	if got := b.Provisioners[0].Shell.Inline[0]; got != "echo common" {
		t.Errorf("b's first provisioner runs %q", got)
	}
	if got := b.Provisioners[1].Shell; got.Inline[0] != "echo overridden" || got.RemoteFolder != "/var/tmp" || got.ExecuteCommand == "" {
		t.Errorf("b's override: %+v", got)
	}
	if len(b.ErrorCleanup) != 1 || b.ErrorCleanup[0].ShellLocal.Inline[0] != "echo cleanup b" {
		t.Errorf("error cleanup: %+v", b.ErrorCleanup)
	}

	out, diags := loadJSONErr(t, `{"builders": [{`+legacySource+`, "name": "alpha"}],
 "provisioners": [{"type": "shell", "inline": ["x"], "only": ["alpah"]}]}`, LoadOptions{})
	errorAt(t, diags, "Unknown builder alpah", 5, 63)
	wantContains(t, out, `Did you mean "alpha"?`)
}

func TestLegacyPostProcessorForms(t *testing.T) {
	src := `{
  "builders": [{` + legacySource + `, "name": "a"}, {` + legacySource + `, "name": "b"}],
  "post-processors": [
    "manifest",
    {"type": "checksum", "checksum_types": ["sha256"], "output": "{{build_name}}.{{.ChecksumType}}", "keep_input_artifact": true},
    [
      {"type": "compress", "output": "{{build_name}}.gz", "only": ["b"]},
      {"type": "shell-local", "inline": ["echo done"]}
    ]
  ]
}`
	tmpl := mustLoadJSON(t, src, LoadOptions{})
	describe := func(b *Build) string {
		var chains []string
		for _, c := range b.PostProcessors {
			var parts []string
			for _, pp := range c {
				attrs, _ := pp.Body.JustAttributes()
				s := pp.Type
				if pp.KeepInputArtifact {
					s += "(keep)"
				}
				if a, ok := attrs["output"]; ok {
					v, _ := a.Expr.Value(pp.EvalContext)
					s += "=" + v.AsString()
				}
				parts = append(parts, s)
			}
			chains = append(chains, strings.Join(parts, "->"))
		}
		return strings.Join(chains, " | ")
	}
	if got, want := describe(tmpl.Builds[0]), "manifest | checksum(keep)=a.{{.ChecksumType}} | shell-local"; got != want {
		t.Errorf("a: %s\nwant %s", got, want)
	}
	if got, want := describe(tmpl.Builds[1]), "manifest | checksum(keep)=b.{{.ChecksumType}} | compress=b.gz->shell-local"; got != want {
		t.Errorf("b: %s\nwant %s", got, want)
	}
}

func TestIsLegacyJSON(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"a.json":      `{}`,
		"b.pkr.json":  `{"source": {}}`,
		"c.pkr.json":  `{"builders": []}`,
		"template":    ` {"builders": []}`,
		"d.pkr.hcl":   `builders = 1`,
		"other.json5": `not json`,
	})
	for name, want := range map[string]bool{"a.json": true, "b.pkr.json": false, "c.pkr.json": true, "template": true, "d.pkr.hcl": false, "other.json5": false, ".": false} {
		if got := IsLegacyJSON(filepath.Join(dir, name)); got != want {
			t.Errorf("IsLegacyJSON(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestLegacyPackerOnlyOptions(t *testing.T) {
	src := `{"builders": [{` + legacySource + `,
  "qemu_img_args": {"convert": ["-o", "preallocation=full"]},
  "floppy_files": ["ks.cfg"],
  "ssh_pty": true}]}`
	tmpl, diags := loadJSON(t, src, LoadOptions{})
	out := render(tmpl, diags)
	wantContains(t, out, "build.json:5:3: Error: qemu_img_args is not supported by kiln",
		"build.json:6:3: Error: floppy_files is not supported by kiln", "Put the files on a CD with cd_files",
		"build.json:7:3: Warning: ssh_pty is ignored by kiln")
	if strings.Contains(out, "Unsupported argument") {
		t.Errorf("Packer-only options reported as unknown:\n%s", out)
	}
	out, _ = loadJSONErr(t, `{"builders": [{`+legacySource+`, "vm_name": "{{packer_version}}"}]}`, LoadOptions{})
	wantContains(t, out, `function "packer_version" not defined`, "Legacy JSON templates can use user, env,")
}

func TestLegacyHCLVarFile(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"build.json":       `{"variables": {"user": "x"}, "builders": [{` + legacySource + `, "ssh_username": "{{user ` + "`user`" + `}}"}]}`,
		"prod.pkrvars.hcl": `user = "admin"` + "\n" + `usr = "typo"` + "\n",
	})
	tmpl, diags := Load(filepath.Join(dir, "build.json"), LoadOptions{VarFiles: []string{filepath.Join(dir, "prod.pkrvars.hcl")}})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	if got := onlyBuild(t, tmpl).Source.SSHUsername; got != "admin" {
		t.Errorf("ssh_username = %q", got)
	}
	wantContains(t, render(tmpl, tmpl.Warnings), "prod.pkrvars.hcl:2:1: Warning: Undefined variable usr", `Did you mean "user"?`)
}

func TestUpgradeDropsInvalidNames(t *testing.T) {
	dir := writeDir(t, map[string]string{"b.json": `{"builders": [{` + legacySource + `, "bad key": 1}]}`})
	out, _, diags := Upgrade(filepath.Join(dir, "b.json"), UpgradeOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	wantContains(t, string(out), `# kiln hcl2_upgrade: "bad key" dropped`)
}
