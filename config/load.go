package config

// The loader evaluates a template in passes, as Packer does, because
// gohcl cannot decode a file whose expressions refer to values defined in
// the same file: (1) parse every file, (2) declare variables, (3) collect
// their values in precedence order and validate them, (4) resolve locals
// by dependency order, (5) decode sources and builds with the full
// evaluation context, once per (build, source) pair so that source.name
// is right in each.

import (
	"fmt"
	"github.com/kilnbuild/kiln/internal/textdist"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// LoadOptions are the inputs of a template besides its files.
type LoadOptions struct {
	// Vars are -var name=value pairs as raw strings. As in Packer, the
	// value of a string, number or untyped variable is taken literally;
	// any other type is parsed as an HCL expression (e.g. ["a","b"]).
	Vars map[string]string
	// VarFiles are -var-file paths (*.pkrvars.hcl or *.json), applied in
	// order after the auto-loaded var files.
	VarFiles []string
	// Env is the environment in os.Environ() form. PKR_VAR_name values,
	// env() and pathexpand() read it; the process environment is not
	// consulted.
	Env []string
	// Now is what timestamp() returns; zero means time.Now().
	Now time.Time
}

const (
	extHCL         = ".pkr.hcl"
	extJSON        = ".pkr.json"
	extAutoVarHCL  = ".auto.pkrvars.hcl"
	extAutoVarJSON = ".auto.pkrvars.json"
)

// topSchema lists every top-level block kiln understands. data is listed
// only so it can be refused with a specific message.
var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "packer"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "variables"},
		{Type: "locals"},
		{Type: "local", LabelNames: []string{"name"}},
		{Type: "source", LabelNames: []string{"type", "name"}},
		{Type: "build"},
		{Type: "data", LabelNames: []string{"type", "name"}},
	},
}

const supportedTopLevel = "A kiln template may contain packer, variable, variables, locals, local, source and build blocks."

// loader holds the state of one Load call.
type loader struct {
	opts   LoadOptions
	parser *hclparse.Parser
	root   string // absolute template directory
	cwd    string
	env    map[string]string
	funcs  map[string]function.Function

	vars      []*inputVar
	varByName map[string]*inputVar
	varValues map[string]cty.Value
	locals    map[string]cty.Value
	sensitive []string

	sources     map[string]*sourceBlock // by "type.name"
	sourceOrder []string
	builds      []*Build
}

// Load reads the template at path: a .pkr.hcl or .pkr.json file, or a
// directory whose *.pkr.hcl and *.pkr.json files (not recursive) form one
// template, plus its *.auto.pkrvars.hcl / *.auto.pkrvars.json files.
//
// The returned diagnostics hold errors and warnings; warnings are also in
// Template.Warnings. The Template is never nil: when there are errors its
// Files are still set so the diagnostics can be printed with
// WriteDiagnostics, but nothing else in it is to be trusted.
func Load(path string, opts LoadOptions) (*Template, hcl.Diagnostics) {
	l := &loader{
		opts:      opts,
		parser:    hclparse.NewParser(),
		env:       envMap(opts.Env),
		varByName: map[string]*inputVar{},
		varValues: map[string]cty.Value{},
		locals:    map[string]cty.Value{},
		sources:   map[string]*sourceBlock{},
	}
	if l.opts.Now.IsZero() {
		l.opts.Now = time.Now()
	}
	load := l.load
	if IsLegacyJSON(path) {
		load = l.loadLegacy // legacy_*.go
	}
	diags := dedupe(load(path))

	t := &Template{Root: l.root, Files: l.parser.Files()}
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			t.Warnings = append(t.Warnings, d)
		}
	}
	if diags.HasErrors() {
		return t, diags
	}
	t.Builds = l.builds
	t.Sensitive = l.sensitive
	t.Variables = l.publicVariables()
	for _, b := range t.Builds {
		b.Sensitive = append([]string(nil), l.sensitive...)
	}
	return t, diags
}

func (l *loader) load(path string) hcl.Diagnostics {
	files, autoVarFiles, diags := l.discover(path)
	if diags.HasErrors() {
		return diags
	}
	if wd, err := os.Getwd(); err == nil {
		l.cwd = wd
	}
	l.funcs = functions(funcEnv{root: l.root, env: l.env, now: l.opts.Now})

	var parsed []*hcl.File
	for _, f := range files {
		var file *hcl.File
		var more hcl.Diagnostics
		if strings.HasSuffix(f, ".json") {
			file, more = l.parser.ParseJSONFile(f)
		} else {
			file, more = l.parser.ParseHCLFile(f)
		}
		diags = append(diags, more...)
		if file != nil {
			parsed = append(parsed, file)
		}
	}
	if diags.HasErrors() {
		return diags
	}

	// Group the top-level blocks by type, in file order.
	blocks := map[string][]*hcl.Block{}
	for _, f := range parsed {
		content, more := f.Body.Content(topSchema)
		for _, d := range more {
			if d.Summary == "Unsupported block type" || d.Summary == "Unsupported argument" {
				d.Detail = strings.TrimSpace(d.Detail + " " + supportedTopLevel)
			}
		}
		diags = append(diags, more...)
		for _, b := range content.Blocks {
			blocks[b.Type] = append(blocks[b.Type], b)
		}
	}
	for _, b := range blocks["packer"] {
		diags = append(diags, decodePackerBlock(b)...)
	}
	for _, b := range blocks["data"] {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Data sources are not supported by kiln",
			Detail: fmt.Sprintf("data %q %q needs a Packer plugin. Replace it with a variable or a local. %s",
				b.Labels[0], b.Labels[1], supportedTopLevel),
			Subject: b.DefRange.Ptr(),
		})
	}

	// Variables: declare, collect values, validate.
	for _, b := range blocks["variable"] {
		diags = append(diags, l.declareVariable(b)...)
	}
	for _, b := range blocks["variables"] {
		diags = append(diags, l.declareVariablesBlock(b)...)
	}
	diags = append(diags, l.collectValues(autoVarFiles)...)
	if diags.HasErrors() {
		return diags
	}
	diags = append(diags, l.resolveVariables()...)
	if diags.HasErrors() {
		return diags
	}

	diags = append(diags, l.resolveLocals(blocks["locals"], blocks["local"])...)
	if diags.HasErrors() {
		return diags
	}

	for _, b := range blocks["source"] {
		diags = append(diags, l.declareSource(b)...)
	}
	for _, b := range blocks["build"] {
		diags = append(diags, l.decodeBuild(b)...)
	}
	return diags
}

// discover lists the template files and auto var files for path and sets
// l.root.
func (l *loader) discover(path string) (files, autoVars []string, diags hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read template",
			Detail:   fmt.Sprintf("%v. Give a .pkr.hcl or .pkr.json file, or a directory containing them.", err),
		}}
	}
	dir := path
	if !fi.IsDir() {
		dir = filepath.Dir(path)
		if !strings.HasSuffix(path, extHCL) && !strings.HasSuffix(path, extJSON) {
			detail := fmt.Sprintf("%s is not a template: kiln reads HCL2 templates named *%s or *%s, or a directory containing them.", path, extHCL, extJSON)
			return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Not a template file", Detail: detail}}
		}
		files = []string{path}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot resolve template directory", Detail: err.Error()}}
	}
	l.root = abs
	if !fi.IsDir() {
		// As in Packer, auto var files are only picked up when a directory
		// is given.
		return files, nil, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read template directory", Detail: err.Error()}}
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		full := filepath.Join(path, name)
		switch {
		case strings.HasSuffix(name, extHCL), strings.HasSuffix(name, extJSON):
			files = append(files, full)
		case strings.HasSuffix(name, extAutoVarHCL), strings.HasSuffix(name, extAutoVarJSON):
			autoVars = append(autoVars, full)
		}
	}
	if len(files) == 0 {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No template files in " + path,
			Detail:   fmt.Sprintf("A template directory must contain at least one *%s or *%s file (subdirectories are not read).", extHCL, extJSON),
		}}
	}
	sort.Strings(files)
	sort.Strings(autoVars)
	return files, autoVars, nil
}

// decodePackerBlock accepts packer { required_version, required_plugins }.
// kiln has no Packer version to compare against and needs no plugins.
func decodePackerBlock(b *hcl.Block) hcl.Diagnostics {
	content, diags := b.Body.Content(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "required_version"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "required_plugins"}},
	})
	for _, rp := range content.Blocks {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "kiln builds qemu itself; plugin requirements are ignored",
			Detail:   "required_plugins is for `packer init`. kiln needs no plugins; the block can stay for Packer's sake.",
			Subject:  rp.DefRange.Ptr(),
		})
	}
	return diags
}

// evalCtx is the evaluation context of everything outside variable
// defaults: var, local, path, plus extra (source, build) when given.
func (l *loader) evalCtx(extra map[string]cty.Value) *hcl.EvalContext {
	vars := map[string]cty.Value{
		"var":   cty.ObjectVal(l.varValues),
		"local": cty.ObjectVal(l.locals),
		"path": cty.ObjectVal(map[string]cty.Value{
			"root": cty.StringVal(filepath.ToSlash(l.root)),
			"cwd":  cty.StringVal(filepath.ToSlash(l.cwd)),
		}),
	}
	for k, v := range extra {
		vars[k] = v
	}
	return &hcl.EvalContext{Variables: vars, Functions: l.funcs}
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// dedupe drops repeated diagnostics: bodies evaluated once per source
// report the same problem once per source otherwise.
func dedupe(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, d := range diags {
		key := fmt.Sprintf("%d|%s|%s", d.Severity, d.Summary, d.Detail)
		if d.Subject != nil {
			key += "|" + d.Subject.String()
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, d)
	}
	return out
}

// suggest returns the candidate closest to name, if it is close enough to
// be a plausible typo (the same threshold HCL uses).
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := textdist.Distance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
