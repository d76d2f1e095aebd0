package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// decodeFlat decodes body into out, a pointer to a struct whose fields are
// all `hcl:"name"` / `hcl:"name,optional"` attributes (QEMU and the
// provisioner configs). It differs from gohcl.DecodeBody in one way that
// Packer templates rely on: an attribute whose value is null counts as
// unset (Packer decodes with hcldec, where null means "not given"), so
// `iso_url = var.x != "" ? var.x : null` works. Unknown attributes are
// reported by HCL with its "Did you mean" suggestion.
func decodeFlat(body hcl.Body, ctx *hcl.EvalContext, out any) hcl.Diagnostics {
	schema, _ := gohcl.ImpliedBodySchema(out)
	// Required attributes are checked below, after null filtering.
	lax := &hcl.BodySchema{Blocks: schema.Blocks}
	for _, a := range schema.Attributes {
		lax.Attributes = append(lax.Attributes, hcl.AttributeSchema{Name: a.Name})
	}
	content, diags := body.Content(lax)

	v := reflect.ValueOf(out).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("hcl"), ",")
		if name == "" {
			continue
		}
		optional := opts == "optional"
		attr, ok := content.Attributes[name]
		if !ok {
			if !optional {
				diags = append(diags, missingAttr(name, body))
			}
			continue
		}
		value, more := attr.Expr.Value(ctx)
		diags = append(diags, more...)
		if more.HasErrors() {
			continue
		}
		if value.IsNull() {
			if !optional {
				diags = append(diags, missingAttr(name, body))
			}
			continue
		}
		diags = append(diags, gohcl.DecodeExpression(hcl.StaticExpr(value, attr.Expr.Range()), nil, v.Field(i).Addr().Interface())...)
	}
	return diags
}

func missingAttr(name string, body hcl.Body) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Missing required argument",
		Detail:   fmt.Sprintf("The argument %q is required, but no definition was found.", name),
		Subject:  body.MissingItemRange().Ptr(),
	}
}
