package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// sourceBlock is a top-level `source "TYPE" "NAME"` block, decoded only
// when a build uses it.
type sourceBlock struct {
	typ, name string
	block     *hcl.Block
}

// sourceUse is one source referenced by a build, through `sources = [...]`
// or a nested `source "source.TYPE.NAME" { ... }` block.
type sourceUse struct {
	typ, name string
	localName string   // `name = ...` inside a nested source block
	body      hcl.Body // the rest of a nested source block, merged into the source
	rng       hcl.Range
}

// effectiveName is what source.name evaluates to and what the build is
// called by (Packer's SourceUseBlock.name()).
func (u *sourceUse) effectiveName() string {
	if u.localName != "" {
		return u.localName
	}
	return u.name
}

var buildSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "source", LabelNames: []string{"reference"}},
		{Type: "provisioner", LabelNames: []string{"type"}},
		{Type: "error-cleanup-provisioner", LabelNames: []string{"type"}},
		{Type: "post-processor", LabelNames: []string{"type"}},
		{Type: "post-processors"},
		{Type: "hcp_packer_registry"},
	},
}

var postProcessorsSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "post-processor", LabelNames: []string{"type"}}},
}

func (l *loader) declareSource(b *hcl.Block) hcl.Diagnostics {
	key := b.Labels[0] + "." + b.Labels[1]
	if prev, ok := l.sources[key]; ok {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Duplicate source block",
			Detail:   fmt.Sprintf("source.%s is already declared at %s. Each source needs a unique name per type.", key, prev.block.DefRange),
			Subject:  b.DefRange.Ptr(),
		}}
	}
	l.sources[key] = &sourceBlock{typ: b.Labels[0], name: b.Labels[1], block: b}
	l.sourceOrder = append(l.sourceOrder, "source."+key)
	return nil
}

// parseSourceRef reads "source.TYPE.NAME" (or "TYPE.NAME") like Packer's
// sourceRefFromString.
func parseSourceRef(s string) (typ, name string, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return "", "", false
	}
	if len(parts) > 2 {
		parts = parts[1:]
	}
	if len(parts) != 2 || !hclsyntax.ValidIdentifier(parts[0]) || !hclsyntax.ValidIdentifier(parts[1]) {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func invalidRef(s string, rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid source reference",
		Detail:   fmt.Sprintf("%q is not a source reference. Write source.TYPE.NAME, e.g. \"source.qemu.debian\".", s),
		Subject:  rng.Ptr(),
	}
}

// buildBlock holds the parts of a build block shared by all its sources.
type buildBlock struct {
	name     string
	block    *hcl.Block
	provs    []*hcl.Block
	cleanups []*hcl.Block
	ppChains [][]*hcl.Block
}

func (l *loader) decodeBuild(block *hcl.Block) hcl.Diagnostics {
	var raw struct {
		Name        string   `hcl:"name,optional"`
		Description string   `hcl:"description,optional"`
		Sources     []string `hcl:"sources,optional"`
		Rest        hcl.Body `hcl:",remain"`
	}
	diags := gohcl.DecodeBody(block.Body, l.evalCtx(nil), &raw)
	if diags.HasErrors() {
		return diags
	}
	bb := &buildBlock{name: raw.Name, block: block}

	var uses []*sourceUse
	ranges := sourcesElementRanges(block.Body, len(raw.Sources))
	for i, s := range raw.Sources {
		typ, name, ok := parseSourceRef(s)
		if !ok {
			diags = append(diags, invalidRef(s, ranges[i]))
			continue
		}
		uses = append(uses, &sourceUse{typ: typ, name: name, rng: ranges[i]})
	}

	content, more := raw.Rest.Content(buildSchema)
	diags = append(diags, more...)
	if more.HasErrors() {
		return diags
	}
	for _, b := range content.Blocks {
		switch b.Type {
		case "source":
			u, more := decodeSourceUse(b)
			diags = append(diags, more...)
			if u != nil {
				uses = append(uses, u)
			}
		case "provisioner":
			bb.provs = append(bb.provs, b)
		case "error-cleanup-provisioner":
			if len(bb.cleanups) > 0 {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Only one error-cleanup-provisioner is allowed",
					Detail:   fmt.Sprintf("This build already has one at %s. Merge them into one block.", bb.cleanups[0].DefRange),
					Subject:  b.DefRange.Ptr(),
				})
				continue
			}
			bb.cleanups = append(bb.cleanups, b)
		case "post-processor":
			bb.ppChains = append(bb.ppChains, []*hcl.Block{b})
		case "post-processors":
			chain, more := b.Body.Content(postProcessorsSchema)
			diags = append(diags, more...)
			if !more.HasErrors() {
				bb.ppChains = append(bb.ppChains, chain.Blocks)
			}
		case "hcp_packer_registry":
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "hcp_packer_registry is ignored by kiln",
				Detail:   "kiln does not publish to HCP Packer.",
				Subject:  b.DefRange.Ptr(),
			})
		}
	}
	if len(uses) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing source reference",
			Detail:   "A build block must use at least one source: sources = [\"source.qemu.NAME\"] or a source \"source.qemu.NAME\" {} block.",
			Subject:  block.DefRange.Ptr(),
		})
	}
	if diags.HasErrors() {
		return diags
	}

	for _, u := range uses {
		src, ok := l.sources[u.typ+"."+u.name]
		if !ok {
			ref := "source." + u.typ + "." + u.name
			detail := "Declare it with a source \"" + u.typ + "\" \"" + u.name + "\" {} block."
			if s := suggest(ref, l.sourceOrder); s != "" {
				detail = fmt.Sprintf("Did you mean %q?", s)
			} else if len(l.sourceOrder) > 0 {
				detail += " Declared sources: " + strings.Join(l.sourceOrder, ", ") + "."
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown source " + ref,
				Detail:   detail,
				Subject:  u.rng.Ptr(),
			})
			continue
		}
		if src.typ != "qemu" && src.typ != "libvirt" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  fmt.Sprintf("kiln builds only qemu sources; skipping source.%s.%s", src.typ, src.name),
				Detail:   "Use Packer for " + src.typ + " builds; kiln ignores them.",
				Subject:  u.rng.Ptr(),
			})
			continue
		}
		b, more := l.newBuild(bb, u, src)
		diags = append(diags, more...)
		if b != nil {
			l.builds = append(l.builds, b)
		}
	}
	return diags
}

// sourcesElementRanges returns a range per element of `sources`, so a bad
// reference is pointed at precisely; JSON or computed lists fall back to
// the whole expression.
func sourcesElementRanges(body hcl.Body, n int) []hcl.Range {
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "sources"}}})
	out := make([]hcl.Range, n)
	a, ok := content.Attributes["sources"]
	if !ok {
		return out
	}
	tuple, isTuple := a.Expr.(*hclsyntax.TupleConsExpr)
	for i := range out {
		if isTuple && len(tuple.Exprs) == n {
			out[i] = tuple.Exprs[i].Range()
		} else {
			out[i] = a.Expr.Range()
		}
	}
	return out
}

func decodeSourceUse(b *hcl.Block) (*sourceUse, hcl.Diagnostics) {
	typ, name, ok := parseSourceRef(b.Labels[0])
	if !ok {
		return nil, hcl.Diagnostics{invalidRef(b.Labels[0], b.LabelRanges[0])}
	}
	var raw struct {
		Name string   `hcl:"name,optional"`
		Rest hcl.Body `hcl:",remain"`
	}
	// Packer decodes the local name without variables.
	if diags := gohcl.DecodeBody(b.Body, nil, &raw); diags.HasErrors() {
		return nil, diags
	}
	return &sourceUse{typ: typ, name: name, localName: raw.Name, body: raw.Rest, rng: b.LabelRanges[0]}, nil
}

// buildName is Packer's CoreBuild.Name(): "TYPE.NAME" for an unnamed
// build block, "BUILD.TYPE.NAME" for a named one, where NAME is the
// source's local name if the build gave it one.
func buildName(build, typ, name string) string {
	if build != "" {
		return build + "." + typ + "." + name
	}
	return typ + "." + name
}

// newBuild decodes one qemu source for one build block, with the
// provisioners and post-processors evaluated for that source.
func (l *loader) newBuild(bb *buildBlock, u *sourceUse, src *sourceBlock) (*Build, hcl.Diagnostics) {
	name := u.effectiveName()
	ctx := l.evalCtx(map[string]cty.Value{
		"source": cty.ObjectVal(map[string]cty.Value{"type": cty.StringVal(src.typ), "name": cty.StringVal(name)}),
		"build":  cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(bb.name)}),
	})

	body := src.block.Body
	if u.body != nil {
		body = hcl.MergeBodies([]hcl.Body{body, u.body})
	}
	q := &QEMU{}
	rest, diags := stripPackerOnly(body)
	lv, rest, more := splitLibvirt(rest, ctx, src.typ) // libvirt.go
	diags = append(diags, more...)
	diags = append(diags, decodeFlat(rest, ctx, q)...)
	if lv != nil {
		applyLibvirtDefaults(q)
	}
	for _, d := range diags {
		if d.Summary == "Duplicate argument" && u.body != nil {
			d.Detail += ". A source block inside a build can only set options the top-level source block leaves unset (as in Packer); remove one of the two."
		}
	}
	// After a decode error (typically a misspelt option) prepare would
	// only add confusing follow-ups such as "Missing iso_url"; the
	// provisioners are still checked so one run shows all their errors.
	if !diags.HasErrors() {
		if q.BootKeyInterval == "" {
			q.BootKeyInterval = l.env["PACKER_KEY_INTERVAL"]
		}
		ranges := attributeRanges(body)
		for _, d := range q.prepare(src.name) {
			if a, ok := d.Extra.(attrRef); ok {
				if r, found := ranges[string(a)]; found {
					d.Subject = r.Ptr()
				}
			}
			if d.Subject == nil {
				d.Subject = src.block.DefRange.Ptr()
			}
			diags = append(diags, d)
		}
	}

	b := &Build{
		Name:       buildName(bb.name, src.typ, name),
		BuildName:  bb.name,
		SourceName: name,
		SourceType: src.typ,
		Source:     q,
		Libvirt:    lv,
	}
	srcRef := src.typ + "." + name // what provisioner only/except match, as in Packer
	for _, pb := range bb.provs {
		p, more := decodeProvisioner(pb, ctx, srcRef)
		diags = append(diags, more...)
		if p != nil {
			b.Provisioners = append(b.Provisioners, p)
		}
	}
	for _, pb := range bb.cleanups {
		p, more := decodeProvisioner(pb, ctx, srcRef)
		diags = append(diags, more...)
		if p != nil {
			b.ErrorCleanup = append(b.ErrorCleanup, p)
		}
	}
	for _, chain := range bb.ppChains {
		var pps []*PostProcessor
		for _, pb := range chain {
			pp, more := decodePostProcessor(pb, ctx, srcRef)
			diags = append(diags, more...)
			if pp != nil {
				pps = append(pps, pp)
			}
		}
		if len(pps) > 0 {
			b.PostProcessors = append(b.PostProcessors, pps)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return b, diags
}

// attributeRanges maps each qemu option set in body to the range of its
// value.
func attributeRanges(body hcl.Body) map[string]hcl.Range {
	schema, _ := gohcl.ImpliedBodySchema(&QEMU{})
	content, _, _ := body.PartialContent(schema)
	out := map[string]hcl.Range{}
	for name, a := range content.Attributes {
		out[name] = a.Expr.Range()
	}
	return out
}
