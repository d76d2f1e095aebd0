package config

// loadLegacy turns a legacy JSON template into the same Builds as an HCL2
// template: variables are resolved and every string is interpolated
// first, then each builder, provisioner and post-processor becomes an
// hcl.Block over a staticBody and goes through the HCL2 decoding
// (newBuild). Nothing after Load knows which format a build came from.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func (l *loader) loadLegacy(path string) hcl.Diagnostics {
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot resolve template directory", Detail: err.Error()}}
	}
	l.root = abs
	if wd, err := os.Getwd(); err == nil {
		l.cwd = wd
	}
	l.funcs = functions(funcEnv{root: l.root, env: l.env, now: l.opts.Now})

	t, diags := parseLegacy(l.parser, path)
	if diags.HasErrors() {
		return diags
	}
	diags = append(diags, l.legacyVariables(t)...)
	if diags.HasErrors() {
		return diags
	}

	names := map[string]string{} // builder name -> type, for only/except/override
	var order []string
	for _, b := range t.builders {
		name := b.typ
		if kv := b.get("name"); kv != nil {
			s, more := jsonString(kv.expr, "builder name")
			diags = append(diags, more...)
			name = s
		}
		if _, dup := names[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate builder name " + name,
				Detail:   "Two builders are called " + name + ". Give each a unique \"name\".",
				Subject:  b.typRange.Ptr(),
			})
		}
		names[name] = b.typ
		order = append(order, name)
	}
	if diags.HasErrors() {
		return diags
	}
	for i, b := range t.builders {
		name := order[i]
		if b.typ != "qemu" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  fmt.Sprintf("kiln builds only qemu builders; skipping builder %s (%s)", name, b.typ),
				Detail:   "Use Packer for " + b.typ + " builds; kiln ignores them.",
				Subject:  b.typRange.Ptr(),
			})
			continue
		}
		diags = append(diags, l.legacyBuild(t, b, name, names)...)
	}
	return diags
}

// legacyVariables declares the template's variables, applies -var-file
// and -var values (PKR_VAR_ is HCL2-only in Packer, so it is not read
// here) and interpolates the winning values, which may use {{env}} and
// {{user}} of other variables.
func (l *loader) legacyVariables(t *legacyTemplate) hcl.Diagnostics {
	var diags hcl.Diagnostics
	raw := map[string]string{}
	rng := map[string]*hcl.Range{}
	for _, v := range t.vars {
		iv := &inputVar{name: v.name, typ: cty.String, declared: true, typeStr: "string", declRange: v.nameRange}
		diags = append(diags, l.addVar(iv, v.nameRange)...)
		if v.def == nil {
			continue
		}
		val, _ := v.def.Value(nil)
		s, err := legacyScalar(val)
		if err != nil {
			diags = append(diags, wrongType(v.def, "default of variable "+v.name, "a string (or null for a required variable)"))
			continue
		}
		raw[v.name], rng[v.name] = s, v.def.Range().Ptr()
	}
	for _, s := range t.sensitive {
		v, ok := l.varByName[s.key]
		if !ok {
			detail := fmt.Sprintf("sensitive-variables names %q, which \"variables\" does not declare.", s.key)
			if sug := suggest(s.key, sortedKeys(l.varByName)); sug != "" {
				detail += fmt.Sprintf(" Did you mean %q?", sug)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared sensitive variable " + s.key, Detail: detail, Subject: s.keyRange.Ptr()})
			continue
		}
		v.sensitive = true
	}
	for _, f := range l.opts.VarFiles {
		diags = append(diags, l.legacyVarFile(f, raw, rng)...)
	}
	for _, name := range sortedKeys(l.opts.Vars) {
		if _, ok := l.varByName[name]; !ok {
			detail := fmt.Sprintf("-var %s=... was given but the template's \"variables\" has no %q. Add it there, or fix the name.", name, name)
			if s := suggest(name, sortedKeys(l.varByName)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undefined -var variable", Detail: detail})
			continue
		}
		raw[name], rng[name] = l.opts.Vars[name], nil
	}
	if diags.HasErrors() {
		return diags
	}

	// Render lazily so a variable can use another one whatever their
	// order; a cycle is an error.
	done := map[string]string{}
	state := map[string]int{} // 1 rendering, 2 done
	var resolve func(name string) (string, error)
	scope := l.newLegacyScope("")
	scope.inVariables = true
	scope.user = func(name string) (string, error) { return resolve(name) }
	funcs := scope.funcs()
	resolve = func(name string) (string, error) {
		if _, ok := l.varByName[name]; !ok {
			return "", undeclaredUser(name, sortedKeys(l.varByName))
		}
		switch state[name] {
		case 1:
			return "", fmt.Errorf("variable %s refers to itself through {{user}}", name)
		case 2:
			return done[name], nil
		}
		state[name] = 1
		s, err := renderLegacy(raw[name], funcs)
		if err != nil {
			return "", err
		}
		state[name] = 2
		done[name] = s
		return s, nil
	}
	for _, v := range l.vars {
		if _, ok := raw[v.name]; !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Required variable %q not set", v.name),
				Detail:   fmt.Sprintf("%s has a null default, so it must be given: -var %s=... or a -var-file.", v.name, v.name),
				Subject:  v.declRange.Ptr(),
			})
			continue
		}
		s, err := resolve(v.name)
		if err != nil {
			subject := rng[v.name]
			if subject == nil {
				subject = v.declRange.Ptr()
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value of variable " + v.name, Detail: legacyErrDetail(err), Subject: subject})
			continue
		}
		val := cty.StringVal(s)
		v.values = append(v.values, assignment{from: "template", val: val, rng: rng[v.name]})
		l.varValues[v.name] = val
		if v.sensitive {
			l.sensitive = appendSecrets(l.sensitive, val)
		}
	}
	return diags
}

func undeclaredUser(name string, declared []string) error {
	msg := fmt.Sprintf("variable %q is not declared in \"variables\"", name)
	if s := suggest(name, declared); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return fmt.Errorf("%s", msg)
}

// legacyScalar is the string form of a JSON variable value: Packer's
// variables are strings, and numbers and booleans are taken as written.
func legacyScalar(v cty.Value) (string, error) {
	switch {
	case v.Type() == cty.String:
		return v.AsString(), nil
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('f', -1), nil
	case v.Type() == cty.Bool:
		if v.True() {
			return "true", nil
		}
		return "false", nil
	}
	return "", fmt.Errorf("not a string")
}

// legacyVarFile reads a -var-file: a flat JSON object of strings (Packer's
// legacy format) or a .pkrvars.hcl file.
func (l *loader) legacyVarFile(path string, raw map[string]string, rng map[string]*hcl.Range) hcl.Diagnostics {
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(path, ".hcl") {
		f, diags = l.parser.ParseHCLFile(path)
	} else {
		f, diags = l.parser.ParseJSONFile(path)
	}
	if diags.HasErrors() || f == nil {
		return diags
	}
	attrs, more := f.Body.JustAttributes()
	diags = append(diags, more...)
	for _, name := range sortedKeys(attrs) {
		a := attrs[name]
		if _, ok := l.varByName[name]; !ok {
			detail := fmt.Sprintf("%s sets %q, which the template's \"variables\" does not declare; the value is ignored.", path, name)
			if s := suggest(name, sortedKeys(l.varByName)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Undefined variable " + name, Detail: detail, Subject: a.NameRange.Ptr()})
			continue
		}
		val, more := a.Expr.Value(nil)
		diags = append(diags, more...)
		s, err := legacyScalar(val)
		if err != nil {
			diags = append(diags, wrongType(a.Expr, "value of variable "+name, "a string"))
			continue
		}
		raw[name], rng[name] = s, a.Expr.Range().Ptr()
	}
	return diags
}

// newLegacyScope is the function scope of the strings of builder name
// (empty for variables).
func (l *loader) newLegacyScope(buildName string) *legacyScope {
	now := l.opts.Now.UTC()
	declared := sortedKeys(l.varByName)
	return &legacyScope{
		user: func(name string) (string, error) {
			v, ok := l.varValues[name]
			if !ok {
				return "", undeclaredUser(name, declared)
			}
			return v.AsString(), nil
		},
		buildName:   buildName,
		env:         l.env,
		templateDir: l.root,
		pwd:         l.cwd,
		timestamp:   legacyTimestamp(now.Unix()),
		isotime: func(layout ...string) (string, error) {
			switch len(layout) {
			case 0:
				return now.Format(time.RFC3339), nil
			case 1:
				return now.Format(layout[0]), nil
			}
			return "", fmt.Errorf("isotime takes at most one layout")
		},
		uuid: uuid.NewString,
	}
}

// renderValue interpolates every string inside a JSON value.
func renderValue(expr hcl.Expression, funcs map[string]any) (cty.Value, hcl.Diagnostics) {
	v, _ := expr.Value(nil)
	ty := v.Type()
	switch {
	case v.IsNull():
		return v, nil
	case ty == cty.String:
		s, err := renderLegacy(v.AsString(), funcs)
		if err != nil {
			return cty.DynamicVal, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid template interpolation",
				Detail:   legacyErrDetail(err),
				Subject:  expr.Range().Ptr(),
			}}
		}
		return cty.StringVal(s), nil
	case ty.IsTupleType():
		if _, ok := hcl.UnwrapExpression(expr).(interface{ ExprList() []hcl.Expression }); !ok {
			return v, nil // already rendered (only/except rewritten to source refs)
		}
		items, diags := hcl.ExprList(expr)
		vals := make([]cty.Value, 0, len(items))
		for _, it := range items {
			val, more := renderValue(it, funcs)
			diags = append(diags, more...)
			vals = append(vals, val)
		}
		if len(vals) == 0 {
			return cty.EmptyTupleVal, diags
		}
		return cty.TupleVal(vals), diags
	case ty.IsObjectType():
		pairs, diags := hcl.ExprMap(expr)
		vals := map[string]cty.Value{}
		for _, p := range pairs {
			k, _ := p.Key.Value(nil)
			val, more := renderValue(p.Value, funcs)
			diags = append(diags, more...)
			vals[k.AsString()] = val
		}
		if len(vals) == 0 {
			return cty.EmptyObjectVal, diags
		}
		return cty.ObjectVal(vals), diags
	}
	return v, nil
}

// legacyBlock renders an object's keys into an hcl.Block of the given
// HCL2 block type (labelled with the object's type).
func legacyBlock(blockType string, o *legacyObject, kvs []jsonKV, funcs map[string]any) (*hcl.Block, hcl.Diagnostics) {
	var attrs []staticAttr
	var diags hcl.Diagnostics
	for _, kv := range kvs {
		val, more := renderValue(kv.expr, funcs)
		diags = append(diags, more...)
		attrs = append(attrs, staticAttr{name: kv.key, nameRange: kv.keyRange, valRange: kv.expr.Range(), val: val})
	}
	start := hcl.Range{Filename: o.rng.Filename, Start: o.rng.Start, End: o.rng.Start}
	return &hcl.Block{
		Type:        blockType,
		Labels:      []string{o.typ},
		Body:        newStaticBody(attrs, start),
		DefRange:    o.typRange,
		TypeRange:   o.typRange,
		LabelRanges: []hcl.Range{o.typRange},
	}, diags
}

// legacyBuild makes the Build of one qemu builder.
func (l *loader) legacyBuild(t *legacyTemplate, b *legacyObject, name string, builders map[string]string) hcl.Diagnostics {
	scope := l.newLegacyScope(name)
	funcs := scope.funcs()
	block, diags := legacyBlock("source", b, b.without("name"), funcs)
	block.Labels = []string{"qemu", name}
	block.LabelRanges = []hcl.Range{b.typRange, b.typRange}
	src := &sourceBlock{typ: "qemu", name: name, block: block}

	bb := &buildBlock{}
	provisioner := func(blockType string, p *legacyObject) *hcl.Block {
		kvs, more := legacyProvisionerKeys(p, name, builders)
		diags = append(diags, more...)
		pb, more := legacyBlock(blockType, p, kvs, funcs)
		diags = append(diags, more...)
		return pb
	}
	for _, p := range t.provisioners {
		bb.provs = append(bb.provs, provisioner("provisioner", p))
	}
	if t.errorCleanup != nil {
		bb.cleanups = append(bb.cleanups, provisioner("error-cleanup-provisioner", t.errorCleanup))
	}
	for _, chain := range t.postProcessors {
		var blocks []*hcl.Block
		for _, p := range chain {
			kvs, more := legacyOnlyExcept(p, builders)
			diags = append(diags, more...)
			pb, more := legacyBlock("post-processor", p, kvs, funcs)
			diags = append(diags, more...)
			blocks = append(blocks, pb)
		}
		bb.ppChains = append(bb.ppChains, blocks)
	}
	if diags.HasErrors() {
		return diags
	}
	build, more := l.newBuild(bb, &sourceUse{typ: "qemu", name: name, rng: b.typRange}, src)
	diags = append(diags, more...)
	if build != nil {
		// Packer names a legacy build after its builder: "==> NAME:" and
		// -only=NAME.
		build.Name = name
		l.builds = append(l.builds, build)
	}
	return diags
}

// legacyOnlyExcept rewrites only/except from builder names to the
// "TYPE.NAME" source references the HCL2 decoding matches, and checks
// the names exist, as Packer does.
func legacyOnlyExcept(p *legacyObject, builders map[string]string) ([]jsonKV, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	out := make([]jsonKV, 0, len(p.kvs))
	for _, kv := range p.kvs {
		if kv.key != "only" && kv.key != "except" {
			out = append(out, kv)
			continue
		}
		items, more := jsonList(kv.expr, kv.key)
		diags = append(diags, more...)
		var refs []cty.Value
		for _, it := range items {
			s, more := jsonString(it, kv.key+" entry")
			diags = append(diags, more...)
			typ, ok := builders[s]
			if !ok && !more.HasErrors() {
				diags = append(diags, unknownBuilder(kv.key, s, it.Range(), builders))
				continue
			}
			refs = append(refs, cty.StringVal(typ+"."+s))
		}
		val := cty.EmptyTupleVal
		if len(refs) > 0 {
			val = cty.TupleVal(refs)
		}
		out = append(out, jsonKV{key: kv.key, keyRange: kv.keyRange, expr: hcl.StaticExpr(val, kv.expr.Range())})
	}
	return out, diags
}

func unknownBuilder(what, name string, rng hcl.Range, builders map[string]string) *hcl.Diagnostic {
	detail := fmt.Sprintf("%s names %q, but no builder is called that.", what, name)
	if s := suggest(name, sortedKeys(builders)); s != "" {
		detail += fmt.Sprintf(" Did you mean %q?", s)
	} else {
		detail += " Builders: " + strings.Join(sortedKeys(builders), ", ") + "."
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown builder " + name, Detail: detail, Subject: rng.Ptr()}
}

// legacyProvisionerKeys applies a provisioner's override for the builder
// name (Packer replaces the listed keys for that builder) and rewrites
// only/except.
func legacyProvisionerKeys(p *legacyObject, name string, builders map[string]string) ([]jsonKV, hcl.Diagnostics) {
	kvs, diags := legacyOnlyExcept(p, builders)
	i := slices.IndexFunc(kvs, func(kv jsonKV) bool { return kv.key == "override" })
	if i < 0 {
		return kvs, diags
	}
	override := kvs[i]
	kvs = slices.Delete(kvs, i, i+1)
	per, more := jsonObject(override.expr, "override")
	diags = append(diags, more...)
	for _, o := range per {
		if _, ok := builders[o.key]; !ok {
			diags = append(diags, unknownBuilder("override", o.key, o.keyRange, builders))
			continue
		}
		if o.key != name {
			continue
		}
		keys, more := jsonObject(o.expr, "override."+name)
		diags = append(diags, more...)
		for _, k := range keys {
			if j := slices.IndexFunc(kvs, func(kv jsonKV) bool { return kv.key == k.key }); j >= 0 {
				kvs[j] = k
			} else {
				kvs = append(kvs, k)
			}
		}
	}
	return kvs, diags
}

// legacyErrDetail explains an interpolation error; an unknown function
// gets the list of the ones kiln has.
func legacyErrDetail(err error) string {
	msg := err.Error() + "."
	if strings.Contains(msg, "not defined") && strings.Contains(msg, "function") {
		msg += " Legacy JSON templates can use " + strings.Join(legacyFuncNames, ", ") + "."
	}
	return msg
}
