package config

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// inputVar is a declared variable and every value given to it, lowest
// precedence first.
type inputVar struct {
	name        string
	typ         cty.Type // cty.DynamicPseudoType when neither type nor default says
	declared    bool     // type came from a type attribute (else inferred)
	typeStr     string
	description string
	sensitive   bool
	declRange   hcl.Range
	validations []*validation
	values      []assignment
}

// assignment is one value for a variable and where it came from.
type assignment struct {
	from string // "default", "env", "var file", "-var"
	val  cty.Value
	rng  *hcl.Range
}

type validation struct {
	cond hcl.Expression
	msg  string
	rng  hcl.Range
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "description"}, {Name: "default"}, {Name: "type"}, {Name: "sensitive"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true}, {Name: "error_message", Required: true},
	},
}

func (l *loader) addVar(v *inputVar, rng hcl.Range) hcl.Diagnostics {
	if prev, ok := l.varByName[v.name]; ok {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Duplicate variable " + v.name,
			Detail:   fmt.Sprintf("Variable %q was already declared at %s. Remove or rename one of them.", v.name, prev.declRange),
			Subject:  rng.Ptr(),
		}}
	}
	if !hclsyntax.ValidIdentifier(v.name) {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid variable name",
			Detail:   "A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.",
			Subject:  rng.Ptr(),
		}}
	}
	l.varByName[v.name] = v
	l.vars = append(l.vars, v)
	return nil
}

// declareVariable decodes a `variable "name" { ... }` block.
func (l *loader) declareVariable(b *hcl.Block) hcl.Diagnostics {
	v := &inputVar{name: b.Labels[0], typ: cty.DynamicPseudoType, declRange: b.DefRange}
	content, diags := b.Body.Content(variableSchema)

	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, &v.description)...)
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, &v.sensitive)...)
	}
	if a, ok := content.Attributes["type"]; ok {
		ty, more := typeexpr.TypeConstraint(a.Expr)
		diags = append(diags, more...)
		if !more.HasErrors() {
			v.typ, v.declared = ty, true
			v.typeStr = typeexpr.TypeString(ty)
		}
	}
	if a, ok := content.Attributes["default"]; ok {
		// Packer lets defaults call env(); kiln offers every function.
		val, more := a.Expr.Value(&hcl.EvalContext{Functions: l.funcs})
		diags = append(diags, more...)
		if !more.HasErrors() {
			if v.declared {
				conv, err := convert.Convert(val, v.typ)
				if err != nil {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Invalid default value for variable " + v.name,
						Detail:   fmt.Sprintf("The default does not match the type %s: %s. Change the default or the type.", v.typeStr, err),
						Subject:  a.Expr.Range().Ptr(),
					})
					conv = cty.DynamicVal
				}
				val = conv
			} else if !val.IsNull() {
				// As in Packer, an untyped variable takes its default's
				// type, so -var values are parsed accordingly.
				v.typ = val.Type()
				v.typeStr = typeexpr.TypeString(v.typ)
			}
			v.values = append(v.values, assignment{from: "default", val: val, rng: a.Expr.Range().Ptr()})
		}
	}
	for _, vb := range content.Blocks {
		vv, more := decodeValidation(v.name, vb)
		diags = append(diags, more...)
		if vv != nil {
			v.validations = append(v.validations, vv)
		}
	}
	return append(diags, l.addVar(v, b.LabelRanges[0])...)
}

// declareVariablesBlock decodes the short form `variables { name = default }`.
func (l *loader) declareVariablesBlock(b *hcl.Block) hcl.Diagnostics {
	attrs, diags := b.Body.JustAttributes()
	for _, name := range sortedKeys(attrs) {
		a := attrs[name]
		val, more := a.Expr.Value(&hcl.EvalContext{Functions: l.funcs})
		diags = append(diags, more...)
		v := &inputVar{name: name, typ: cty.DynamicPseudoType, declRange: a.Range}
		if !more.HasErrors() {
			if !val.IsNull() {
				v.typ = val.Type()
				v.typeStr = typeexpr.TypeString(v.typ)
			}
			v.values = append(v.values, assignment{from: "default", val: val, rng: a.Expr.Range().Ptr()})
		}
		diags = append(diags, l.addVar(v, a.NameRange)...)
	}
	return diags
}

func decodeValidation(name string, b *hcl.Block) (*validation, hcl.Diagnostics) {
	content, diags := b.Body.Content(validationSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	vv := &validation{rng: b.DefRange}
	cond := content.Attributes["condition"]
	vv.cond = cond.Expr
	good := 0
	for _, tr := range cond.Expr.Variables() {
		if tr.RootName() == "var" && len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok && a.Name == name {
				good++
				continue
			}
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference in variable validation",
			Detail:   fmt.Sprintf("The condition for variable %q can only refer to the variable itself, as var.%s.", name, name),
			Subject:  tr.SourceRange().Ptr(),
		})
	}
	if good == 0 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid variable validation condition",
			Detail:   fmt.Sprintf("The condition for variable %q must refer to var.%s to test the value.", name, name),
			Subject:  cond.Expr.Range().Ptr(),
		})
	}
	msg := content.Attributes["error_message"]
	more := gohcl.DecodeExpression(msg.Expr, nil, &vv.msg)
	diags = append(diags, more...)
	if !more.HasErrors() && !looksLikeSentence(vv.msg) {
		// Packer's rule: the message is quoted inside a larger error, so it
		// must read as a sentence.
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid validation error message",
			Detail:   "The error message must be at least one full sentence, starting with an uppercase letter and ending with a period or question mark.",
			Subject:  msg.Expr.Range().Ptr(),
		})
	}
	return vv, diags
}

func looksLikeSentence(s string) bool {
	r := []rune(strings.TrimSpace(s))
	if len(r) == 0 {
		return false
	}
	if unicode.IsLetter(r[0]) && !unicode.IsUpper(r[0]) {
		return false
	}
	last := r[len(r)-1]
	return last == '.' || last == '?' || last == '!'
}

// collectValues applies, in Packer's precedence order: PKR_VAR_ env
// values, auto var files, -var-file files in order, then -var flags.
// Later values win.
func (l *loader) collectValues(autoVarFiles []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, name := range sortedKeys(l.env) {
		rest, ok := strings.CutPrefix(name, "PKR_VAR_")
		if !ok {
			continue
		}
		v, ok := l.varByName[rest]
		if !ok {
			continue // undeclared env values are ignored, as in Packer
		}
		diags = append(diags, l.assignRaw(v, l.env[name], "env", fmt.Sprintf("<value for var.%s from env %s>", rest, name))...)
	}
	for _, f := range append(append([]string(nil), autoVarFiles...), l.opts.VarFiles...) {
		diags = append(diags, l.applyVarFile(f)...)
	}
	for _, name := range sortedKeys(l.opts.Vars) {
		v, ok := l.varByName[name]
		if !ok {
			detail := fmt.Sprintf("-var %s=... was given but the template declares no variable %q. Declare it with a variable %q {} block, or fix the name.", name, name, name)
			if s := suggest(name, sortedKeys(l.varByName)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undefined -var variable", Detail: detail})
			continue
		}
		diags = append(diags, l.assignRaw(v, l.opts.Vars[name], "-var", fmt.Sprintf("<value for var.%s from -var>", name))...)
	}
	return diags
}

// assignRaw parses a command-line or environment string the way Packer
// does: literally for string, number and untyped variables, as an HCL
// expression for everything else.
func (l *loader) assignRaw(v *inputVar, raw, from, fakeName string) hcl.Diagnostics {
	var val cty.Value
	src := []byte(raw)
	// Keep the text as a pseudo-file so diagnostics can show it.
	l.parser.AddFile(fakeName, &hcl.File{Bytes: src, Body: hcl.EmptyBody()})
	rng := &hcl.Range{
		Filename: fakeName,
		Start:    hcl.Pos{Line: 1, Column: 1, Byte: 0},
		End:      hcl.Pos{Line: 1, Column: 1 + len([]rune(raw)), Byte: len(src)},
	}
	switch v.typ {
	case cty.String, cty.Number, cty.DynamicPseudoType:
		val = cty.StringVal(raw)
	default:
		expr, diags := hclsyntax.ParseExpression(src, fakeName, hcl.Pos{Line: 1, Column: 1, Byte: 0})
		if diags.HasErrors() {
			return diags
		}
		var more hcl.Diagnostics
		val, more = expr.Value(nil)
		if more.HasErrors() {
			for _, d := range more {
				d.Detail = strings.TrimSpace(d.Detail + fmt.Sprintf(" var.%s has type %s, so its value is read as an HCL expression (quote strings: \"text\").", v.name, v.typeStr))
			}
			return more
		}
	}
	return l.assign(v, val, from, rng)
}

func (l *loader) assign(v *inputVar, val cty.Value, from string, rng *hcl.Range) hcl.Diagnostics {
	if v.declared || v.typ.IsPrimitiveType() {
		conv, err := convert.Convert(val, v.typ)
		if err != nil {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Invalid value for variable %s from %s", v.name, from),
				Detail:   fmt.Sprintf("The value is not compatible with the variable's type %s: %s.", v.typeStr, err),
				Subject:  rng,
			}}
		}
		val = conv
	}
	v.values = append(v.values, assignment{from: from, val: val, rng: rng})
	return nil
}

func (l *loader) applyVarFile(path string) hcl.Diagnostics {
	var f *hcl.File
	var diags hcl.Diagnostics
	switch {
	case strings.HasSuffix(path, ".json"):
		f, diags = l.parser.ParseJSONFile(path)
	case strings.HasSuffix(path, ".hcl"):
		f, diags = l.parser.ParseHCLFile(path)
	default:
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Could not guess the format of var file " + path,
			Detail:   "A var file must be named *.pkrvars.hcl (or *.hcl) or *.json.",
		}}
	}
	if diags.HasErrors() || f == nil {
		return diags
	}
	// A common mistake: declaring variables in a var file.
	content, _, _ := f.Body.PartialContent(&hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "variable", LabelNames: []string{"name"}}},
	})
	for _, b := range content.Blocks {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Variable declaration in a var file",
			Detail: fmt.Sprintf("A var file assigns values to variables declared in the template. Move this block into a .pkr.hcl file, and here write:\n    %s = <value>",
				b.Labels[0]),
			Subject: b.TypeRange.Ptr(),
		})
	}
	if diags.HasErrors() {
		return diags
	}
	attrs, more := f.Body.JustAttributes()
	diags = append(diags, more...)
	names := sortedKeys(attrs)
	sort.SliceStable(names, func(i, j int) bool {
		return attrs[names[i]].Range.Start.Byte < attrs[names[j]].Range.Start.Byte
	})
	for _, name := range names {
		a := attrs[name]
		v, ok := l.varByName[name]
		if !ok {
			detail := fmt.Sprintf("%s sets %q, which the template does not declare; the value is ignored.", path, name)
			if s := suggest(name, sortedKeys(l.varByName)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			} else {
				detail += fmt.Sprintf(" Declare it with a variable %q {} block if it is meant to be used.", name)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Undefined variable " + name,
				Detail:   detail,
				Subject:  a.NameRange.Ptr(),
			})
			continue
		}
		val, more := a.Expr.Value(nil)
		diags = append(diags, more...)
		if more.HasErrors() {
			continue
		}
		diags = append(diags, l.assign(v, val, "var file", a.Expr.Range().Ptr())...)
	}
	return diags
}

// resolveVariables picks each variable's winning value, runs its
// validation rules and collects sensitive strings.
func (l *loader) resolveVariables() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, v := range l.vars {
		if len(v.values) == 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Unset variable %q", v.name),
				Detail: fmt.Sprintf("var.%s has no default and no value was given. Set it with -var %s=..., a -var-file, the PKR_VAR_%s environment variable, or give it a default.",
					v.name, v.name, v.name),
				Subject: v.declRange.Ptr(),
			})
			l.varValues[v.name] = cty.DynamicVal
			continue
		}
		win := v.values[len(v.values)-1]
		l.varValues[v.name] = win.val
		diags = append(diags, v.validate(win, l.funcsCtx(v.name, win.val))...)
		if v.sensitive {
			l.sensitive = appendSecrets(l.sensitive, win.val)
		}
	}
	return diags
}

func (l *loader) funcsCtx(name string, val cty.Value) *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{name: val})},
		Functions: l.funcs,
	}
}

func (v *inputVar) validate(win assignment, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, vv := range v.validations {
		res, more := vv.cond.Value(ctx)
		diags = append(diags, more...)
		if more.HasErrors() || !res.IsKnown() {
			continue
		}
		if res.IsNull() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid variable validation result",
				Detail:   "The condition must return true or false, not null.",
				Subject:  vv.cond.Range().Ptr(),
			})
			continue
		}
		res, err := convert.Convert(res, cty.Bool)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid variable validation result",
				Detail:   fmt.Sprintf("The condition must return a bool: %s.", err),
				Subject:  vv.cond.Range().Ptr(),
			})
			continue
		}
		if res.False() {
			where := win.from
			if win.rng != nil && win.from != "-var" && win.from != "env" {
				where += " at " + win.rng.String()
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Invalid value for variable %s", v.name),
				Detail:   fmt.Sprintf("%s\n\nThe value came from %s and failed this validation rule.", vv.msg, where),
				Subject:  vv.cond.Range().Ptr(),
			})
		}
	}
	return diags
}

// appendSecrets adds every non-empty string inside val (itself, or the
// leaves of a collection) to dst.
func appendSecrets(dst []string, val cty.Value) []string {
	_ = cty.Walk(val, func(_ cty.Path, v cty.Value) (bool, error) {
		if v.IsKnown() && !v.IsNull() && v.Type() == cty.String && v.AsString() != "" {
			dst = append(dst, v.AsString())
		}
		return true, nil
	})
	return dst
}

func (l *loader) publicVariables() []*Variable {
	out := make([]*Variable, 0, len(l.vars))
	for _, v := range l.vars {
		pv := &Variable{Name: v.name, Type: v.typeStr, Description: v.description, Sensitive: v.sensitive}
		switch {
		case v.sensitive:
			pv.Value = "<sensitive>"
		default:
			pv.Value = displayValue(l.varValues[v.name])
		}
		out = append(out, pv)
	}
	return out
}

// displayValue renders a value for humans: strings as they are, anything
// else as JSON.
func displayValue(v cty.Value) string {
	if !v.IsWhollyKnown() {
		return "<unknown>"
	}
	if v.IsNull() {
		return "null"
	}
	if v.Type() == cty.String {
		return v.AsString()
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return v.GoString()
	}
	return string(b)
}
