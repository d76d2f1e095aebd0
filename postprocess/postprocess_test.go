package postprocess

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func files(arts []Artifact) [][]string {
	var out [][]string
	for _, a := range arts {
		out = append(out, a.Files)
	}
	return out
}

func TestChainSemantics(t *testing.T) {
	disk := filepath.Join("output-debian", "disk.raw")
	cases := []struct {
		name      string
		src       string
		wantFiles [][]string // Files of the returned artifacts, in order
		gone      []string   // paths that must have been deleted
		kept      []string   // paths that must exist
	}{{
		name:      "no post-processors keep the build",
		src:       ``,
		wantFiles: [][]string{{disk}},
		kept:      []string{disk},
	}, {
		name:      "compress deletes its input by default, with the output directory",
		src:       `post-processor "compress" { output = "d.tar.gz" }`,
		wantFiles: [][]string{{"d.tar.gz"}},
		gone:      []string{disk, "output-debian"},
		kept:      []string{"d.tar.gz"},
	}, {
		name: "keep_input_artifact keeps it",
		src: `post-processor "compress" {
  output = "d.zst"
  keep_input_artifact = true
}`,
		wantFiles: [][]string{{disk}, {"d.zst"}},
		kept:      []string{disk, "d.zst"},
	}, {
		name: "the first post-processor of any chain keeping it keeps the build",
		src: `
post-processor "compress" { output = "d.lz4" }
post-processor "checksum" { output = "sums" }`,
		wantFiles: [][]string{{disk}, {"d.lz4"}, {disk, "sums"}},
		kept:      []string{disk, "d.lz4", "sums"},
	}, {
		name: "checksum cannot be told to drop its input",
		src: `post-processor "checksum" {
  output = "sums"
  keep_input_artifact = false
}`,
		wantFiles: [][]string{{disk}, {disk, "sums"}},
		kept:      []string{disk},
	}, {
		name: "an intermediate artifact is deleted unless its consumer keeps it",
		src: `
post-processors {
  post-processor "compress" { output = "d.tar" }
  post-processor "compress" { output = "d.tar.xz" }
  post-processor "manifest" { output = "m.json" }
}`,
		// manifest keeps (and passes through) d.tar.xz; d.tar was
		// consumed by a compress that did not keep it.
		wantFiles: [][]string{{"d.tar.xz"}, {"d.tar.xz"}},
		gone:      []string{disk, "d.tar"},
		kept:      []string{"d.tar.xz", "m.json"},
	}, {
		name: "a kept intermediate artifact is returned before the chain's result",
		src: `
post-processors {
  post-processor "compress" { output = "d.tar" }
  post-processor "compress" {
    output = "d.tar.gz"
    keep_input_artifact = true
  }
}`,
		wantFiles: [][]string{{"d.tar"}, {"d.tar.gz"}},
		gone:      []string{disk},
		kept:      []string{"d.tar", "d.tar.gz"},
	}, {
		name: "only and except are applied to the source",
		src: `
post-processor "compress" {
  output = "only.gz"
  only   = ["qemu.other"]
}
post-processor "compress" {
  output = "except.gz"
  except = ["qemu.debian"]
}
post-processor "checksum" {
  output = "sums"
  only   = ["qemu.debian"]
}`,
		wantFiles: [][]string{{disk}, {disk, "sums"}},
		gone:      []string{"only.gz", "except.gz"},
		kept:      []string{disk, "sums"},
	}, {
		name: "a failed chain keeps the build and the other chains still run",
		src: `
post-processor "shell-local" { inline = ["exit 1"] }
post-processor "compress" { output = "d.gz" }`,
		wantFiles: [][]string{{disk}, {"d.gz"}},
		kept:      []string{disk, "d.gz"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := buildArtifact(t, dir, map[string][]byte{"disk.raw": testData(64<<10, 5)})
			env, out := testEnv(dir)
			env.Source = "qemu.debian"
			arts, err := Run(context.Background(), parseChains(t, dir, c.src), in, env)
			if strings.Contains(c.name, "failed") {
				if err == nil {
					t.Error("want the failure reported")
				}
			} else if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := files(arts); !equalFiles(got, c.wantFiles) {
				t.Errorf("artifacts = %v, want %v", got, c.wantFiles)
			}
			for _, p := range c.gone {
				if exists(filepath.Join(dir, p)) {
					t.Errorf("%s should have been deleted", p)
				}
			}
			for _, p := range c.kept {
				if !exists(filepath.Join(dir, p)) {
					t.Errorf("%s should exist", p)
				}
			}
		})
	}
}

func equalFiles(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "|") != strings.Join(b[i], "|") {
			return false
		}
	}
	return true
}

func TestRunCancelledKeepsBuild(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.raw": []byte("x")})
	env, _ := testEnv(dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	arts, err := Run(ctx, parseChains(t, dir, `post-processor "compress" { output = "d.gz" }`), in, env)
	if err == nil || !strings.Contains(err.Error(), "not run") {
		t.Errorf("err = %v", err)
	}
	if len(arts) != 1 || !exists(filepath.Join(dir, in.Files[0])) {
		t.Errorf("artifacts = %+v; the build's files must remain", arts)
	}
}

func TestValidateDiagnostics(t *testing.T) {
	cases := []struct {
		src, summary string
		line         int // of the diagnostic's subject
	}{
		{`post-processor "vagrant" {}`, `Unsupported post-processor type "vagrant"`, 1},
		{"post-processor \"checksum\" {\n  checksum_type = [\"md5\"]\n}", "Unsupported argument", 2},
		{"post-processor \"checksum\" {\n  output = \"x\"\n  checksum_types = [\"md5\", \"crc32\"]\n}", `Unsupported checksum_types "crc32"`, 3},
		{"post-processor \"checksum\" {\n\n  output = \"{{.Provider}}.sum\"\n}", "Invalid output template", 3},
		{"post-processor \"compress\" {\n  output = \"x.tar.bgzf\"\n}", "Unsupported compress format", 2},
		{"post-processor \"compress\" {\n  compression_level = -4\n}", "Invalid compression_level", 2},
		{"post-processors {\n  post-processor \"manifest\" {\n    strip_paths = true\n  }\n}", "Unsupported argument", 3},
		{"post-processor \"shell-local\" {\n  inline = [\"a\"]\n  script = \"b.sh\"\n}", "exactly one of command, inline, script or scripts", 1},
		{"post-processor \"manifest\" {\n  custom_data = \"x\"\n}", "Unsuitable value type", 2},
	}
	for _, c := range cases {
		diags := Validate(parseChains(t, t.TempDir(), c.src))
		if !diags.HasErrors() {
			t.Errorf("%s: no error", c.src)
			continue
		}
		d := diags[0]
		if !strings.Contains(d.Summary, c.summary) {
			t.Errorf("%s: summary %q, want %q", c.src, d.Summary, c.summary)
		}
		if d.Subject == nil || d.Subject.Start.Line != c.line || d.Subject.Filename != "test.pkr.hcl" {
			t.Errorf("%s: subject %v, want test.pkr.hcl line %d", c.src, d.Subject, c.line)
		}
	}
	if d := Validate(parseChains(t, t.TempDir(), `post-processor "vagrant" {}`)); !strings.Contains(d[0].Detail, "checksum, compress, manifest, shell-local") {
		t.Errorf("unknown type should list the supported ones: %s", d[0].Detail)
	}
	ok := `
post-processor "checksum" { checksum_types = ["sha512"] }
post-processors {
  post-processor "compress" {
    output = "${var.out}/{{.BuildName}}-{{timestamp}}.tar.zst"
    compression_level = 12
  }
  post-processor "manifest" {
    output = "{{build_name}}.json"
    custom_data = { a = "b" }
  }
}
post-processor "shell-local" {
  inline  = ["true"]
  only_on = ["linux", "darwin"]
}`
	if diags := Validate(parseChains(t, t.TempDir(), ok)); len(diags) != 0 {
		t.Errorf("valid blocks: %v", diags)
	}
	var _ hcl.Diagnostics = Validate(nil)
}
