package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/kilnbuild/kiln/internal/testutil"
)

func TestUpgradeGolden(t *testing.T) {
	for _, tc := range []struct {
		in, golden string
		annotate   bool
	}{
		{filepath.Join("testdata", "upgrade", "features.json"), "features.pkr.hcl.golden", false},
		{filepath.Join("..", "testdata", "e2e", "build.json"), "e2e.pkr.hcl.golden", true},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, files, diags := Upgrade(tc.in, UpgradeOptions{WithAnnotations: tc.annotate})
			if diags.HasErrors() {
				t.Fatal(render(&Template{Files: files}, diags))
			}
			testutil.Golden(t, filepath.Join("testdata", "upgrade", tc.golden), out)
		})
	}
}

// TestUpgradeNotesUnsupported checks the parts kept as text get a note.
func TestUpgradeNotesUnsupported(t *testing.T) {
	out, _, diags := Upgrade(filepath.Join("testdata", "upgrade", "features.json"), UpgradeOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := string(out)
	wantContains(t, s,
		"# kiln hcl2_upgrade: {{ packer_version }} has no HCL2 equivalent",
		`timestamp = regex_replace(timestamp(), "[- TZ:]", "")`,
		`"echo ${local.timestamp} ${uuidv4()} {{ packer_version }}"`,
		`default = env("HOME")`,
		`expression = "${lower(var.iso_base)}-${legacy_isotime("20060102")}"`,
		`"d-i passwd/root-password password $${PASS}\n"`, // ${ escaped
		`"auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<enter>"`,
		`= ["qemu.ubuntu"]`, `= ["qemu.debian", "virtualbox-iso.vbox"]`, `= ["virtualbox-iso.vbox"]`,
	)
}

// upgradeAndLoad loads the legacy template at json and its hcl2_upgrade
// output (written beside it, so template_dir and path.root agree).
func upgradeAndLoad(t *testing.T, json string, opts LoadOptions) (legacy, upgraded *Template) {
	t.Helper()
	legacy, diags := Load(json, opts)
	if diags.HasErrors() {
		t.Fatalf("legacy: %s", render(legacy, diags))
	}
	out, files, diags := Upgrade(json, UpgradeOptions{})
	if diags.HasErrors() {
		t.Fatal(render(&Template{Files: files}, diags))
	}
	hclPath := json + ".pkr.hcl"
	if err := os.WriteFile(hclPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	upgraded, diags = Load(hclPath, opts)
	if diags.HasErrors() {
		t.Fatalf("upgraded:\n%s\n%s", out, render(upgraded, diags))
	}
	return legacy, upgraded
}

// sameBuilds compares everything the pipeline reads from two builds.
// Names differ by design: a legacy build is called after its builder
// ("debian"), an HCL2 one after its source ("qemu.debian").
func sameBuilds(t *testing.T, a, b []*Build) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d builds vs %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if "qemu."+x.Name != y.Name || x.SourceName != y.SourceName || x.SourceType != y.SourceType {
			t.Errorf("build %d: names %s/%s/%s vs %s/%s/%s", i, x.Name, x.SourceName, x.SourceType, y.Name, y.SourceName, y.SourceType)
		}
		if !reflect.DeepEqual(x.Source, y.Source) {
			t.Errorf("build %s: sources differ:\n%+v\n%+v", x.Name, *x.Source, *y.Source)
		}
		if !reflect.DeepEqual(x.Sensitive, y.Sensitive) {
			t.Errorf("build %s: sensitive %q vs %q", x.Name, x.Sensitive, y.Sensitive)
		}
		for _, pair := range [][2][]*Provisioner{{x.Provisioners, y.Provisioners}, {x.ErrorCleanup, y.ErrorCleanup}} {
			if len(pair[0]) != len(pair[1]) {
				t.Errorf("build %s: %d provisioners vs %d", x.Name, len(pair[0]), len(pair[1]))
				continue
			}
			for j := range pair[0] {
				p, q := *pair[0][j], *pair[1][j]
				p.Range, q.Range = hcl.Range{}, hcl.Range{}
				if len(p.Only) == 0 && len(p.Except) == 0 {
					// hcl2_upgrade splits a provisioner with an override
					// into one per builder, each with only = [...].
					q.Only = p.Only
				}
				if !reflect.DeepEqual(p, q) {
					t.Errorf("build %s provisioner %d:\n%+v\n%+v", x.Name, j, p, q)
				}
			}
		}
		if len(x.PostProcessors) != len(y.PostProcessors) {
			t.Errorf("build %s: %d post-processor chains vs %d", x.Name, len(x.PostProcessors), len(y.PostProcessors))
			continue
		}
		for c := range x.PostProcessors {
			if len(x.PostProcessors[c]) != len(y.PostProcessors[c]) {
				t.Errorf("build %s chain %d: lengths differ", x.Name, c)
				continue
			}
			for j := range x.PostProcessors[c] {
				p, q := x.PostProcessors[c][j], y.PostProcessors[c][j]
				if p.Type != q.Type || p.Name != q.Name || p.KeepInputArtifact != q.KeepInputArtifact ||
					!reflect.DeepEqual(p.Only, q.Only) || !reflect.DeepEqual(p.Except, q.Except) {
					t.Errorf("build %s pp %d.%d: %+v vs %+v", x.Name, c, j, p, q)
				}
				if pv, qv := ppValues(t, p), ppValues(t, q); !pv.RawEquals(qv) {
					t.Errorf("build %s pp %s: body %#v vs %#v", x.Name, p.Type, pv, qv)
				}
			}
		}
	}
}

// ppValues evaluates a post-processor's body into one object, with lists
// as tuples so JSON arrays and HCL lists compare equal.
func ppValues(t *testing.T, pp *PostProcessor) cty.Value {
	attrs, diags := pp.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	vals := map[string]cty.Value{}
	for name, a := range attrs {
		v, diags := a.Expr.Value(pp.EvalContext)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if v.Type().IsListType() || v.Type().IsTupleType() {
			v = cty.TupleVal(v.AsValueSlice())
		}
		vals[name] = v
	}
	return cty.ObjectVal(vals)
}

func TestUpgradeBuildsTheSameAsLegacyE2E(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"build.json", "payload.txt", "check.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "e2e", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := LoadOptions{Vars: map[string]string{"guest_dir": "/g", "out": "/o", "fault": "hang"}, Now: fixedNow}
	legacy, upgraded := upgradeAndLoad(t, filepath.Join(dir, "build.json"), opts)
	sameBuilds(t, legacy.Builds, upgraded.Builds)
	if len(legacy.Builds) != 2 || legacy.Builds[1].Source.ISOChecksum != "file:/g/SHA256SUMS" {
		t.Errorf("unexpected legacy builds: %+v", legacy.Builds)
	}
}

func TestUpgradeBuildsTheSameAsLegacyFeatures(t *testing.T) {
	// features.json minus what cannot be equal: {{timestamp}} (Unix
	// seconds in JSON, a date in Packer's HCL2 translation), {{uuid}},
	// and the placeholder with no HCL2 equivalent.
	src, err := os.ReadFile(filepath.Join("testdata", "upgrade", "features.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(src), "echo {{timestamp}} {{uuid}} {{ packer_version }}", "echo done", 1)
	dir := writeDir(t, map[string]string{"features.json": s})
	opts := LoadOptions{Vars: map[string]string{"password": "pw"}, Env: []string{"HOME=/home/me"}, Now: fixedNow}
	legacy, upgraded := upgradeAndLoad(t, filepath.Join(dir, "features.json"), opts)
	sameBuilds(t, legacy.Builds, upgraded.Builds)

	// The override split the provisioner in two, one per builder: each
	// build still runs the right variant.
	for _, b := range legacy.Builds {
		last := b.Provisioners[len(b.Provisioners)-1].Shell.Inline[0]
		if want := map[string]string{"debian": "echo default", "ubuntu": "echo ubuntu only"}[b.Name]; last != want {
			t.Errorf("%s runs %q, want %q", b.Name, last, want)
		}
	}
	if got := legacy.Builds[0].Provisioners[0].Shell.Inline[0]; got != "echo https://deb.example.org/cd-20240506 on debian" {
		t.Errorf("provisioner: %q", got)
	}
}

// FuzzUpgradeStringLiteral: text without placeholders must come out of
// HCL2 exactly as it went in (escaping of quotes, backslashes, ${, %{).
func FuzzUpgradeStringLiteral(f *testing.F) {
	for _, s := range []string{"", "plain", `a "quoted" \ back`, "${HOME} %{if}", "$${x}", "tab\tnl\ncr\r", "\x01", "ünï", "$", "%", "{{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "{{") || !utf8.ValidString(s) {
			return
		}
		u := &upgrader{locals: map[string]bool{}, builders: map[string]string{}}
		expr, _ := u.stringExpr(s, false)
		e, diags := hclsyntax.ParseExpression([]byte(expr), "x", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("%q -> %s: %v", s, expr, diags)
		}
		v, diags := e.Value(nil)
		if diags.HasErrors() || v.AsString() != s {
			t.Fatalf("%q -> %s -> %#v %v", s, expr, v, diags)
		}
	})
}
