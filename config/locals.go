package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// localDef is one local value: an attribute of a locals block or a
// `local "name" { expression = ... }` block.
type localDef struct {
	name      string
	expr      hcl.Expression
	sensitive bool
	rng       hcl.Range // the name, for diagnostics
}

var localBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "expression", Required: true}, {Name: "sensitive"}},
}

// resolveLocals evaluates all locals in dependency order, so a local may
// use another one declared later or in another file. Packer retries
// failing locals until nothing changes; kiln sorts them instead, which
// also lets it name a cycle precisely.
func (l *loader) resolveLocals(localsBlocks, localBlocks []*hcl.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	defs := map[string]*localDef{}
	var order []string
	add := func(d *localDef) {
		if prev, ok := defs[d.name]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate local " + d.name,
				Detail:   fmt.Sprintf("local.%s is already defined at %s. Remove or rename one of them.", d.name, prev.rng),
				Subject:  d.rng.Ptr(),
			})
			return
		}
		defs[d.name] = d
		order = append(order, d.name)
	}
	for _, b := range localsBlocks {
		attrs, more := b.Body.JustAttributes()
		diags = append(diags, more...)
		names := sortedKeys(attrs)
		sortByPos(names, func(n string) int { return attrs[n].Range.Start.Byte })
		for _, n := range names {
			add(&localDef{name: n, expr: attrs[n].Expr, rng: attrs[n].NameRange})
		}
	}
	for _, b := range localBlocks {
		content, more := b.Body.Content(localBlockSchema)
		diags = append(diags, more...)
		if more.HasErrors() {
			continue
		}
		d := &localDef{name: b.Labels[0], expr: content.Attributes["expression"].Expr, rng: b.LabelRanges[0]}
		if !hclsyntax.ValidIdentifier(d.name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid local name",
				Detail:   "A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.",
				Subject:  d.rng.Ptr(),
			})
			continue
		}
		if a, ok := content.Attributes["sensitive"]; ok {
			diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, &d.sensitive)...)
		}
		add(d)
	}
	if diags.HasErrors() {
		return diags
	}

	sorted, cycleDiags := topoSortLocals(order, defs)
	diags = append(diags, cycleDiags...)
	for _, n := range sorted {
		d := defs[n]
		val, more := d.expr.Value(l.evalCtx(nil))
		diags = append(diags, more...)
		if more.HasErrors() {
			val = cty.DynamicVal
		}
		l.locals[n] = val
		if d.sensitive {
			l.sensitive = appendSecrets(l.sensitive, val)
		}
	}
	return diags
}

// localDeps lists the locals an expression refers to.
func localDeps(expr hcl.Expression) []string {
	var deps []string
	for _, tr := range expr.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		if a, ok := tr[1].(hcl.TraverseAttr); ok {
			deps = append(deps, a.Name)
		}
	}
	return deps
}

// topoSortLocals returns the locals in an order where every local comes
// after the locals it uses. Locals on a cycle are left out and reported.
func topoSortLocals(order []string, defs map[string]*localDef) ([]string, hcl.Diagnostics) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	onCycle := map[string]bool{}
	var out []string
	var diags hcl.Diagnostics
	var stack []string

	var visit func(n string)
	visit = func(n string) {
		switch state[n] {
		case done:
			return
		case visiting:
			// The cycle is the part of the stack from n's first entry.
			i := len(stack) - 1
			for stack[i] != n {
				i--
			}
			cycle := append(append([]string(nil), stack[i:]...), n)
			for _, c := range cycle {
				onCycle[c] = true
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Circular reference between locals",
				Detail: fmt.Sprintf("local.%s refers back to itself: %s. Break the cycle by computing one of them from variables only.",
					n, "local."+strings.Join(cycle, " → local.")),
				Subject: defs[n].rng.Ptr(),
			})
			return
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, dep := range localDeps(defs[n].expr) {
			if _, ok := defs[dep]; ok {
				visit(dep)
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		if !onCycle[n] {
			out = append(out, n)
		}
	}
	for _, n := range order {
		visit(n)
	}
	// A local that depends on a cycle cannot be computed either; it is
	// evaluated anyway and fails with HCL's "unsupported attribute", which
	// points at the reference.
	return out, diags
}

func sortByPos(names []string, pos func(string) int) {
	for i := 1; i < len(names); i++ {
		for j := i; j > 0 && pos(names[j]) < pos(names[j-1]); j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
}
