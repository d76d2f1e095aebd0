package postprocess

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/internal/testutil"
)

var metaSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "name"}, {Name: "keep_input_artifact"}, {Name: "only"}, {Name: "except"},
}}

// parseChains turns a snippet of post-processor / post-processors blocks
// into chains the way the config package does: meta-arguments decoded,
// the rest of each body left for this package. var.out is dir.
func parseChains(t *testing.T, dir, src string) [][]*config.PostProcessor {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCL([]byte(src), "test.pkr.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{"out": cty.StringVal(dir)}),
	}}
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "post-processor", LabelNames: []string{"type"}}, {Type: "post-processors"},
	}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	one := func(b *hcl.Block) *config.PostProcessor {
		meta, rest, diags := b.Body.PartialContent(metaSchema)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		pp := &config.PostProcessor{Type: b.Labels[0], Range: b.DefRange, Body: rest, EvalContext: ctx}
		for name, target := range map[string]any{"name": &pp.Name, "keep_input_artifact": &pp.KeepInputArtifact, "only": &pp.Only, "except": &pp.Except} {
			if a, ok := meta.Attributes[name]; ok {
				if diags := gohcl.DecodeExpression(a.Expr, ctx, target); diags.HasErrors() {
					t.Fatal(diags)
				}
			}
		}
		return pp
	}
	var chains [][]*config.PostProcessor
	for _, b := range content.Blocks {
		if b.Type == "post-processor" {
			chains = append(chains, []*config.PostProcessor{one(b)})
			continue
		}
		inner, diags := b.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "post-processor", LabelNames: []string{"type"}}}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		var chain []*config.PostProcessor
		for _, ib := range inner.Blocks {
			chain = append(chain, one(ib))
		}
		chains = append(chains, chain)
	}
	return chains
}

// testData is compressible text with random runs, several MiB so that
// the parallel writers use many blocks and cross-block dictionaries.
func testData(n int, seed byte) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{seed}))
	var b bytes.Buffer
	for b.Len() < n {
		if rng.IntN(4) == 0 {
			r := make([]byte, 4096)
			for i := range r {
				r[i] = byte(rng.Uint32())
			}
			b.Write(r)
		} else {
			b.WriteString(strings.Repeat("the quick brown fox jumps over the lazy dog ", 100))
		}
	}
	return b.Bytes()[:n]
}

// buildArtifact creates an output directory like a finished build's,
// under dir, and returns its artifact with paths relative to dir.
func buildArtifact(t *testing.T, dir string, files map[string][]byte) Artifact {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "output-debian"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := Artifact{BuilderID: BuilderID, BuildName: "debian", BuilderType: "qemu", ID: "VM"}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		rel := filepath.Join("output-debian", name)
		if err := os.WriteFile(filepath.Join(dir, rel), files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		a.Files = append(a.Files, rel)
	}
	return a
}

func testEnv(dir string) (Env, *testutil.Buffer) {
	out := &testutil.Buffer{}
	return Env{
		Dir:       dir,
		Say:       func(f string, a ...any) { out.Write([]byte(strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n")) },
		Stdout:    out,
		Stderr:    out,
		BuildName: "debian",
		BuildTime: time.Unix(1700000000, 0),
		RunUUID:   "run-1",
	}, out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
