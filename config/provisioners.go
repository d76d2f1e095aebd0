package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

var supportedProvisioners = []string{"shell", "file", "shell-local", "breakpoint"}

// provisionerMetaSchema lists Packer's provisioner meta-arguments
// (hcl2template/types.build.provisioners.go); the rest of the body is the
// provisioner's own configuration.
var provisionerMetaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name"}, {Name: "pause_before"}, {Name: "max_retries"}, {Name: "timeout"},
		{Name: "only"}, {Name: "except"}, {Name: "override"},
	},
}

var postProcessorMetaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name"}, {Name: "keep_input_artifact"}, {Name: "only"}, {Name: "except"},
	},
}

// onlyExcept is Packer's OnlyExcept: exact source names ("qemu.debian"),
// not globs.
type onlyExcept struct {
	only, except []string
}

func (o onlyExcept) skip(src string) bool {
	if len(o.only) > 0 {
		return !slices.Contains(o.only, src)
	}
	return slices.Contains(o.except, src)
}

// decodeOnlyExcept reads only/except from meta attributes.
func decodeOnlyExcept(attrs hcl.Attributes, ctx *hcl.EvalContext, block *hcl.Block) (onlyExcept, hcl.Diagnostics) {
	var oe onlyExcept
	var diags hcl.Diagnostics
	if a, ok := attrs["only"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, ctx, &oe.only)...)
	}
	if a, ok := attrs["except"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, ctx, &oe.except)...)
	}
	if len(oe.only) > 0 && len(oe.except) > 0 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Only one of only or except may be set",
			Detail:   "Keep one of them: only lists the sources this block runs for, except the sources it skips.",
			Subject:  attrs["except"].Range.Ptr(),
			Context:  block.DefRange.Ptr(),
		})
	}
	return oe, diags
}

func decodeDuration(a *hcl.Attribute, ctx *hcl.EvalContext) (time.Duration, hcl.Diagnostics) {
	var s string
	diags := gohcl.DecodeExpression(a.Expr, ctx, &s)
	if diags.HasErrors() || s == "" {
		return 0, diags
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + a.Name,
			Detail:   fmt.Sprintf("%q is not a duration: use a number with a unit, e.g. \"30s\" or \"5m\".", s),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	return d, nil
}

// decodeProvisioner decodes a provisioner block for the source srcRef
// ("qemu.NAME"). It returns nil without error when only/except exclude the
// source.
func decodeProvisioner(block *hcl.Block, ctx *hcl.EvalContext, srcRef string) (*Provisioner, hcl.Diagnostics) {
	typ := block.Labels[0]
	if !slices.Contains(supportedProvisioners, typ) {
		detail := "Replace it with a shell (in the guest) or shell-local (on the host) provisioner that runs the same tool, or remove it."
		if s := suggest(typ, supportedProvisioners); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("provisioner type %s is not supported by kiln; supported: %s", typ, strings.Join(supportedProvisioners, ", ")),
			Detail:   detail,
			Subject:  block.LabelRanges[0].Ptr(),
		}}
	}
	content, rest, diags := block.Body.PartialContent(provisionerMetaSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	attrs := content.Attributes
	oe, more := decodeOnlyExcept(attrs, ctx, block)
	diags = append(diags, more...)
	if more.HasErrors() || oe.skip(srcRef) {
		return nil, diags
	}
	p := &Provisioner{Type: typ, Only: oe.only, Except: oe.except, Range: block.DefRange}
	if a, ok := attrs["name"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, ctx, &p.Name)...)
	}
	if a, ok := attrs["max_retries"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, ctx, &p.MaxRetries)...)
	}
	if a, ok := attrs["pause_before"]; ok {
		d, more := decodeDuration(a, ctx)
		diags, p.PauseBefore = append(diags, more...), d
	}
	if a, ok := attrs["timeout"]; ok {
		d, more := decodeDuration(a, ctx)
		diags, p.Timeout = append(diags, more...), d
	}
	if a, ok := attrs["override"]; ok {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "override is ignored by kiln",
			Detail:   "Per-source overrides are not applied. Set the options in the provisioner itself, or split it in two with only/except.",
			Subject:  a.NameRange.Ptr(),
		})
	}

	switch typ {
	case "shell":
		p.Shell = &Shell{}
		more = decodeFlat(rest, ctx, p.Shell)
		if !more.HasErrors() {
			more = append(more, exactlyOne(block, "inline, script or scripts",
				len(p.Shell.Inline) > 0, p.Shell.Script != "", len(p.Shell.Scripts) > 0)...)
		}
	case "shell-local":
		p.ShellLocal = &ShellLocal{}
		more = decodeFlat(rest, ctx, p.ShellLocal)
		if !more.HasErrors() {
			more = append(more, exactlyOne(block, "command, inline, script or scripts",
				p.ShellLocal.Command != "", len(p.ShellLocal.Inline) > 0, p.ShellLocal.Script != "", len(p.ShellLocal.Scripts) > 0)...)
		}
	case "file":
		p.File = &File{}
		more = decodeFlat(rest, ctx, p.File)
		if !more.HasErrors() {
			more = append(more, validateFile(block, rest, p.File)...)
		}
	case "breakpoint":
		p.Breakpoint = &Breakpoint{}
		more = decodeFlat(rest, ctx, p.Breakpoint)
	}
	diags = append(diags, more...)
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// exactlyOne reports an error on block unless exactly one of set is true.
func exactlyOne(block *hcl.Block, what string, set ...bool) hcl.Diagnostics {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	if n == 1 {
		return nil
	}
	summary := fmt.Sprintf("%s provisioner needs one of %s", block.Labels[0], what)
	detail := "None is set: say what to run."
	if n > 1 {
		summary = fmt.Sprintf("%s provisioner takes only one of %s", block.Labels[0], what)
		detail = "Several are set: keep one, or split the provisioner in two."
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: block.DefRange.Ptr()}}
}

func validateFile(block *hcl.Block, body hcl.Body, f *File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	kinds := 0
	for _, set := range []bool{f.Source != "", len(f.Sources) > 0, f.Content != ""} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "file provisioner needs source, sources or content",
			Detail:   "Set source (one path), sources (a list of paths) or content (the file's text).",
			Subject:  block.DefRange.Ptr(),
		})
	case kinds > 1:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "file provisioner takes only one of source, sources or content",
			Detail:   "Keep one of them, or use two file provisioners.",
			Subject:  block.DefRange.Ptr(),
		})
	}
	if f.Direction == "" {
		f.Direction = "upload"
	}
	if f.Direction != "upload" && f.Direction != "download" {
		rng := block.DefRange
		if c, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "direction"}}}); c != nil {
			if a, ok := c.Attributes["direction"]; ok {
				rng = a.Expr.Range()
			}
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid file provisioner direction",
			Detail:   fmt.Sprintf("direction is %q: use \"upload\" (the default) or \"download\".", f.Direction),
			Subject:  rng.Ptr(),
		})
	}
	if f.Direction == "download" && f.Content != "" {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "content cannot be downloaded",
			Detail:   "content is for uploads; to download, set source to the guest path.",
			Subject:  block.DefRange.Ptr(),
		})
	}
	return diags
}

// decodePostProcessor extracts a post-processor's meta-arguments and keeps
// the rest of its body, with the evaluation context of this source, for
// the post-processor itself to decode.
func decodePostProcessor(block *hcl.Block, ctx *hcl.EvalContext, srcRef string) (*PostProcessor, hcl.Diagnostics) {
	content, rest, diags := block.Body.PartialContent(postProcessorMetaSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	attrs := content.Attributes
	oe, more := decodeOnlyExcept(attrs, ctx, block)
	diags = append(diags, more...)
	if more.HasErrors() || oe.skip(srcRef) {
		return nil, diags
	}
	pp := &PostProcessor{
		Type:        block.Labels[0],
		Only:        oe.only,
		Except:      oe.except,
		Range:       block.DefRange,
		Body:        rest,
		EvalContext: ctx,
	}
	if a, ok := attrs["name"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, ctx, &pp.Name)...)
	}
	if a, ok := attrs["keep_input_artifact"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, ctx, &pp.KeepInputArtifact)...)
	}
	return pp, diags
}
