package config

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func evalFunc(t *testing.T, fe funcEnv, src string) (string, hcl.Diagnostics) {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", src, diags)
	}
	v, diags := expr.Value(&hcl.EvalContext{Functions: functions(fe)})
	if diags.HasErrors() {
		return "", diags
	}
	return displayValue(v), nil
}

func TestFunctions(t *testing.T) {
	root := writeDir(t, map[string]string{
		"hello.txt":        "hello\n",
		"tmpl.tftpl":       "%{ for u in users }user ${u}\n%{ endfor }host=${upper(host)} {{ .HTTPIP }}",
		"sub/a.cfg":        "a",
		"sub/deeper/b.cfg": "b",
		"sub/deeper/c.txt": "c",
	})
	fe := funcEnv{root: root, env: map[string]string{"HOME": "/home/k", "DISTRO": "debian"}, now: fixedNow}
	cwd, _ := os.Getwd()

	tests := []struct{ expr, want string }{
		{`abs(-3)`, `3`},
		{`abspath("x/y")`, filepath.ToSlash(filepath.Join(cwd, "x/y"))},
		{`basename("/a/b/c.iso")`, `c.iso`},
		{`can(tonumber("x"))`, `false`},
		{`ceil(1.2)`, `2`},
		{`chomp("a\n\n")`, `a`},
		{`coalesce("", "b", "c")`, `b`},
		{`coalescelist([], ["x"])`, `["x"]`},
		{`compact(["a", "", "b"])`, `["a","b"]`},
		{`concat(["a"], ["b"])`, `["a","b"]`},
		{`contains(["a", "b"], "b")`, `true`},
		{`dirname("/a/b/c.iso")`, `/a/b`},
		{`distinct(["a", "a", "b"])`, `["a","b"]`},
		{`element(["a", "b", "c"], 4)`, `b`},
		{`env("DISTRO")`, `debian`},
		{`env("NOT_SET")`, ``},
		{`file("hello.txt")`, "hello\n"},
		{`fileexists("hello.txt")`, `true`},
		{`fileexists("nope.txt")`, `false`},
		{`fileset("sub", "**/*.cfg")`, `["a.cfg","deeper/b.cfg"]`},
		{`fileset("sub", "*.cfg")`, `["a.cfg"]`},
		{`flatten([["a"], [["b"]]])`, `["a","b"]`},
		{`floor(1.8)`, `1`},
		{`format("%s-%03d", "vm", 7)`, `vm-007`},
		{`formatdate("YYYY-MM-DD", "2024-05-06T07:08:09Z")`, `2024-05-06`},
		{`formatlist("%s.iso", ["a", "b"])`, `["a.iso","b.iso"]`},
		{`indent(2, "a\nb")`, "a\n  b"},
		{`join(",", ["a", "b"])`, `a,b`},
		{`jsondecode("{\"a\":1}").a`, `1`},
		{`jsonencode({a = 1})`, `{"a":1}`},
		{`keys({b = 1, a = 2})`, `["a","b"]`},
		{`length("héllo")`, `5`},
		{`length(["a", "b"])`, `2`},
		{`lookup({a = "x"}, "b", "dflt")`, `dflt`},
		{`lower("ABC")`, `abc`},
		{`max(1, 5, 3)`, `5`},
		{`merge({a = 1}, {b = 2})`, `{"a":1,"b":2}`},
		{`min(4, 2)`, `2`},
		{`parseint("ff", 16)`, `255`},
		{`pathexpand("~/x")`, `/home/k/x`},
		{`regex("v([0-9]+)", "v12")`, `["12"]`},
		{`regex_replace("a1b22", "[0-9]+", "#")`, `a#b#`},
		{`regexall("[0-9]", "a1b2")`, `["1","2"]`},
		{`replace("a-b-c", "-", "_")`, `a_b_c`},
		{`reverse(["a", "b"])`, `["b","a"]`},
		{`setunion(["a"], ["b", "a"])`, `["a","b"]`},
		{`sha1("x")`, `11f6ad8ec52a2984abaafd7c3b516503785c2072`},
		{`sha256("x")`, `2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881`},
		{`sha512("x")`, `a4abd4448c49562d828115d13a1fccea927f52b4d5459297f8b43e42da89238bc13626e43dcb38ddb082488927ec904fb42057443983e88585179d50551afe62`},
		{`md5("x")`, `9dd4e461268c8034f5c8564e155c67a6`},
		{`base64encode("kiln")`, `a2lsbg==`},
		{`base64decode("a2lsbg==")`, `kiln`},
		{`slice(["a", "b", "c"], 1, 3)`, `["b","c"]`},
		{`sort(["b", "a"])`, `["a","b"]`},
		{`split(",", "a,b")`, `["a","b"]`},
		{`strrev("abc")`, `cba`},
		{`substr("debian", 0, 3)`, `deb`},
		{`templatefile("tmpl.tftpl", {users = ["a", "b"], host = "h"})`, "user a\nuser b\nhost=H {{ .HTTPIP }}"},
		{`timestamp()`, `2024-05-06T06:08:09Z`},
		{`title("hello world")`, `Hello World`},
		{`trim("xxaxx", "x")`, `a`},
		{`trimprefix("packer-vm", "packer-")`, `vm`},
		{`trimsuffix("disk.qcow2", ".qcow2")`, `disk`},
		{`trimspace("  a  ")`, `a`},
		{`try(tonumber("x"), 7)`, `7`},
		{`upper("abc")`, `ABC`},
		{`urlencode("a b&c")`, `a+b%26c`},
		{`values({a = "x", b = "y"})`, `["x","y"]`},
		{`zipmap(["a", "b"], [1, 2])`, `{"a":1,"b":2}`},
		{`range(3)`, `[0,1,2]`},
		{`tostring(5)`, `5`},
		{`tonumber("5") + 1`, `6`},
		{`tobool("true")`, `true`},
		{`tolist(["a"])`, `["a"]`},
		{`tomap({a = "b"})`, `{"a":"b"}`},
		{`toset(["b", "a", "b"])`, `["a","b"]`},
	}
	for _, tc := range tests {
		got, diags := evalFunc(t, fe, tc.expr)
		if diags.HasErrors() {
			t.Errorf("%s: %s", tc.expr, diags)
			continue
		}
		if got != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
		}
	}

	got, diags := evalFunc(t, fe, `uuidv4()`)
	if diags.HasErrors() || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(got) {
		t.Errorf("uuidv4() = %q, %v", got, diags)
	}
}

func TestFunctionErrors(t *testing.T) {
	root := writeDir(t, map[string]string{"t.tpl": "${missing}", "self.tpl": `${templatefile("self.tpl", {})}`})
	fe := funcEnv{root: root}
	for expr, want := range map[string]string{
		`file("absent.txt")`:           "no file exists at",
		`templatefile("t.tpl", {})`:    `vars map does not contain key "missing"`,
		`templatefile("self.tpl", {})`: "cannot recursively call templatefile",
		`vault("secret/x", "k")`:       "no function named",
		`base64decode("!!")`:           "failed to decode base64",
		`coalesce("", "")`:             "no non-null",
	} {
		_, diags := evalFunc(t, fe, expr)
		if !diags.HasErrors() {
			t.Errorf("%s: no error", expr)
			continue
		}
		wantContains(t, diags.Error(), want)
	}
}

func TestFunctionsInTemplateResolveAgainstRoot(t *testing.T) {
	// file() is relative to the template directory, not the working
	// directory (Packer's behaviour), so loading from elsewhere works.
	dir := writeDir(t, map[string]string{
		"main.pkr.hcl": `locals { x = file("data/x.txt") }
source "qemu" "a" {` + minimalSource + `  vm_name = local.x
}
build { sources = ["source.qemu.a"] }`,
		"data/x.txt": "from-root",
	})
	tmpl, diags := Load(dir, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(render(tmpl, diags))
	}
	if got := onlyBuild(t, tmpl).Source.VMName; got != "from-root" {
		t.Errorf("vm_name = %q", got)
	}
}
