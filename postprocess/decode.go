package postprocess

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/kilnbuild/kiln/config"
)

var supportedTypes = []string{"checksum", "compress", "manifest", "shell-local", "amazon-import", "pxe"}

// decode decodes and checks one block. Unknown attributes are errors
// (gohcl reports them with their range).
func decode(pp *config.PostProcessor) (processor, hcl.Diagnostics) {
	switch pp.Type {
	case "checksum":
		return decodeChecksum(pp)
	case "compress":
		return decodeCompress(pp)
	case "manifest":
		return decodeManifest(pp)
	case "shell-local":
		return decodeShellLocal(pp)
	case "amazon-import":
		return decodeAmazonImport(pp)
	case "pxe":
		return decodePXE(pp)
	}
	return nil, hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Unsupported post-processor type %q", pp.Type),
		Detail:   "kiln supports these post-processors: " + strings.Join(supportedTypes, ", ") + ".",
		Subject:  pp.Range.Ptr(),
	}}
}

// decodeBody decodes pp's body into v with the block's evaluation
// context.
func decodeBody(pp *config.PostProcessor, v any) hcl.Diagnostics {
	if pp.Body == nil {
		return nil
	}
	return gohcl.DecodeBody(pp.Body, pp.EvalContext, v)
}

// attrError is an error diagnostic pointing at attribute name of pp's
// body, or at the block when the attribute is not there.
func attrError(pp *config.PostProcessor, name, summary, detail string) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: pp.Range.Ptr()}
	if pp.Body != nil {
		content, _, _ := pp.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
		if a, ok := content.Attributes[name]; ok {
			d.Subject = a.Expr.Range().Ptr()
			d.Context = a.Range.Ptr()
		}
	}
	return d
}

// checkTemplate renders an output template with sample data so that a
// syntax error or an unknown placeholder is found before the build.
func checkTemplate(pp *config.PostProcessor, attr, tmpl string, keys ...string) hcl.Diagnostics {
	data := map[string]string{}
	for _, k := range keys {
		data[k] = "x"
	}
	if _, err := render(tmpl, data, Env{BuildName: "x", BuildTime: time.Unix(0, 0), Dir: "/"}); err != nil {
		return hcl.Diagnostics{attrError(pp, attr, fmt.Sprintf("Invalid %s template", attr),
			fmt.Sprintf("%v. Available placeholders: %s.", err, placeholders(keys)))}
	}
	return nil
}

func placeholders(keys []string) string {
	var out []string
	for _, k := range keys {
		out = append(out, "{{."+k+"}}")
	}
	return strings.Join(out, ", ")
}

// render fills a Packer-style output template: Go template syntax with
// the placeholders in data ({{.BuildName}}, ...) and a subset of Packer's
// template functions.
func render(tmpl string, data map[string]string, env Env) (string, error) {
	funcs := template.FuncMap{
		"build_name": func() string { return env.BuildName },
		"build_type": func() string { return data["BuilderType"] },
		"timestamp":  func() string { return strconv.FormatInt(env.BuildTime.Unix(), 10) },
		"isotime": func(layout ...string) string {
			if len(layout) == 0 {
				return env.BuildTime.UTC().Format(time.RFC3339)
			}
			return env.BuildTime.UTC().Format(layout[0])
		},
		"upper":       strings.ToUpper,
		"lower":       strings.ToLower,
		"replace_all": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"pwd":         func() string { return env.Dir },
	}
	t, err := template.New("output").Funcs(funcs).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("%q renders to an empty path", tmpl)
	}
	return b.String(), nil
}

// mustBeOneOf checks a value against a closed set.
func mustBeOneOf(pp *config.PostProcessor, attr, v string, allowed []string) hcl.Diagnostics {
	if slices.Contains(allowed, v) {
		return nil
	}
	return hcl.Diagnostics{attrError(pp, attr, fmt.Sprintf("Unsupported %s %q", attr, v),
		"Supported values: "+strings.Join(allowed, ", ")+".")}
}
