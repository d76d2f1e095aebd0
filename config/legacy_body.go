package config

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// staticBody is an hcl.Body of already evaluated attributes, each with the
// range of its key and value in the legacy JSON file. Turning a legacy
// builder, provisioner or post-processor into one lets the HCL2 decoding
// (decodeFlat, prepare, decodeProvisioner, the post-processors' own
// decoders) run unchanged, so both formats give the same configuration
// and the same errors, positioned in the file the user wrote.
type staticBody struct {
	attrs   map[string]*hcl.Attribute
	missing hcl.Range // where a missing argument is reported
}

// staticAttr is one key of a legacy object after interpolation.
type staticAttr struct {
	name      string
	nameRange hcl.Range
	valRange  hcl.Range
	val       cty.Value
}

func newStaticBody(attrs []staticAttr, missing hcl.Range) *staticBody {
	b := &staticBody{attrs: map[string]*hcl.Attribute{}, missing: missing}
	for _, a := range attrs {
		b.attrs[a.name] = &hcl.Attribute{
			Name:      a.name,
			Expr:      hcl.StaticExpr(a.val, a.valRange),
			Range:     hcl.RangeBetween(a.nameRange, a.valRange),
			NameRange: a.nameRange,
		}
	}
	return b
}

func (b *staticBody) Content(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	content, rest, diags := b.PartialContent(schema)
	var known []string
	for _, a := range schema.Attributes {
		known = append(known, a.Name)
	}
	for _, name := range sortedKeys(rest.(*staticBody).attrs) {
		a := rest.(*staticBody).attrs[name]
		detail := fmt.Sprintf("An argument named %q is not expected here.", name)
		if s := suggest(name, known); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   detail,
			Subject:  a.NameRange.Ptr(),
		})
	}
	sort.SliceStable(diags, func(i, j int) bool {
		return diags[i].Subject != nil && diags[j].Subject != nil && diags[i].Subject.Start.Byte < diags[j].Subject.Start.Byte
	})
	return content, diags
}

func (b *staticBody) PartialContent(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	content := &hcl.BodyContent{Attributes: hcl.Attributes{}, MissingItemRange: b.missing}
	rest := &staticBody{attrs: map[string]*hcl.Attribute{}, missing: b.missing}
	for k, v := range b.attrs {
		rest.attrs[k] = v
	}
	var diags hcl.Diagnostics
	for _, s := range schema.Attributes {
		a, ok := b.attrs[s.Name]
		if !ok {
			if s.Required {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Missing required argument",
					Detail:   fmt.Sprintf("The argument %q is required, but no definition was found.", s.Name),
					Subject:  b.missing.Ptr(),
				})
			}
			continue
		}
		content.Attributes[s.Name] = a
		delete(rest.attrs, s.Name)
	}
	// Legacy objects hold no blocks, but a key named like a block in the
	// schema (qemu_img_args) is what the block would be in HCL2.
	for _, s := range schema.Blocks {
		a, ok := rest.attrs[s.Type]
		if !ok || len(s.LabelNames) > 0 {
			continue
		}
		content.Blocks = append(content.Blocks, &hcl.Block{
			Type:      s.Type,
			Body:      hcl.EmptyBody(),
			DefRange:  a.NameRange,
			TypeRange: a.NameRange,
		})
		delete(rest.attrs, s.Type)
	}
	return content, rest, diags
}

func (b *staticBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	out := hcl.Attributes{}
	for k, v := range b.attrs {
		out[k] = v
	}
	return out, nil
}

func (b *staticBody) MissingItemRange() hcl.Range { return b.missing }
