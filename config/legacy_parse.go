package config

// Legacy JSON templates (Packer's format before HCL2) are parsed with
// HCL's JSON parser rather than encoding/json: it reports syntax errors
// with file:line:column and gives every key and value its range, which
// the error messages about the template's content need too.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// IsLegacyJSON reports whether path is a legacy JSON template: a file
// named *.json but not *.pkr.json (HCL2's JSON syntax), or any file
// whose content is a JSON object with a "builders" key.
func IsLegacyJSON(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || strings.HasSuffix(path, extHCL) {
		return false
	}
	if strings.HasSuffix(path, ".json") && !strings.HasSuffix(path, extJSON) {
		return true
	}
	src, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(bytes.TrimSpace(src), []byte("{")) {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(src, &top) != nil {
		return false
	}
	_, ok := top["builders"]
	return ok
}

// jsonKV is one key of a JSON object with its value.
type jsonKV struct {
	key      string
	keyRange hcl.Range
	expr     hcl.Expression
}

// legacyObject is a builder, provisioner or post-processor definition.
type legacyObject struct {
	typ      string
	typRange hcl.Range
	rng      hcl.Range // the whole object
	kvs      []jsonKV  // every key but "type" and "_comments"
}

func (o *legacyObject) get(key string) *jsonKV {
	for i := range o.kvs {
		if o.kvs[i].key == key {
			return &o.kvs[i]
		}
	}
	return nil
}

func (o *legacyObject) without(keys ...string) []jsonKV {
	var out []jsonKV
	for _, kv := range o.kvs {
		drop := false
		for _, k := range keys {
			drop = drop || kv.key == k
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

type legacyVar struct {
	name      string
	nameRange hcl.Range
	def       hcl.Expression // nil when the default is null: the variable is required
}

type legacyTemplate struct {
	filename       string
	vars           []legacyVar
	sensitive      []jsonKV // key is the variable name, expr its range
	builders       []*legacyObject
	provisioners   []*legacyObject
	errorCleanup   *legacyObject
	postProcessors [][]*legacyObject
	description    string
}

var legacyRootKeys = []string{
	"variables", "sensitive-variables", "builders", "provisioners",
	"error-cleanup-provisioner", "post-processors", "min_packer_version", "description",
}

func kindOf(expr hcl.Expression) cty.Type {
	v, _ := expr.Value(nil)
	return v.Type()
}

func wrongType(expr hcl.Expression, what, want string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid " + what,
		Detail:   fmt.Sprintf("%s must be %s.", what, want),
		Subject:  expr.Range().Ptr(),
	}
}

// jsonObject lists the keys of a JSON object expression in file order,
// without Packer's "_comment"-style keys.
func jsonObject(expr hcl.Expression, what string) ([]jsonKV, hcl.Diagnostics) {
	if !kindOf(expr).IsObjectType() {
		return nil, hcl.Diagnostics{wrongType(expr, what, "a JSON object")}
	}
	pairs, diags := hcl.ExprMap(expr)
	var out []jsonKV
	for _, p := range pairs {
		k, _ := p.Key.Value(nil)
		if k.Type() != cty.String || strings.HasPrefix(k.AsString(), "_") {
			continue
		}
		out = append(out, jsonKV{key: k.AsString(), keyRange: p.Key.Range(), expr: p.Value})
	}
	return out, diags
}

func jsonList(expr hcl.Expression, what string) ([]hcl.Expression, hcl.Diagnostics) {
	if !kindOf(expr).IsTupleType() {
		return nil, hcl.Diagnostics{wrongType(expr, what, "a JSON array")}
	}
	return hcl.ExprList(expr)
}

func jsonString(expr hcl.Expression, what string) (string, hcl.Diagnostics) {
	v, _ := expr.Value(nil)
	if v.Type() != cty.String || v.IsNull() {
		return "", hcl.Diagnostics{wrongType(expr, what, "a string")}
	}
	return v.AsString(), nil
}

// legacyDefinition reads a builder/provisioner/post-processor object; a
// bare string is accepted where Packer accepts one (post-processors).
func legacyDefinition(expr hcl.Expression, what string, allowString bool) (*legacyObject, hcl.Diagnostics) {
	if allowString && kindOf(expr) == cty.String {
		s, diags := jsonString(expr, what)
		return &legacyObject{typ: s, typRange: expr.Range(), rng: expr.Range()}, diags
	}
	kvs, diags := jsonObject(expr, what)
	if diags.HasErrors() {
		return nil, diags
	}
	o := &legacyObject{rng: expr.Range()}
	for _, kv := range kvs {
		if kv.key != "type" {
			o.kvs = append(o.kvs, kv)
			continue
		}
		s, more := jsonString(kv.expr, what+" type")
		diags = append(diags, more...)
		o.typ, o.typRange = s, kv.expr.Range()
	}
	if o.typ == "" && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing type in " + what,
			Detail:   fmt.Sprintf("Every %s needs a \"type\", e.g. \"type\": \"qemu\".", what),
			Subject:  hcl.Range{Filename: o.rng.Filename, Start: o.rng.Start, End: o.rng.Start}.Ptr(),
		})
	}
	return o, diags
}

// parseLegacy reads a legacy JSON template's structure. Values are not
// interpolated yet.
func parseLegacy(parser *hclparse.Parser, path string) (*legacyTemplate, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read template", Detail: err.Error() + "."}}
	}
	// encoding/json points at the exact byte of a syntax error, where
	// HCL's JSON parser sometimes reports the end of the enclosing object.
	if d := jsonSyntaxError(path, src); d != nil {
		parser.AddFile(path, &hcl.File{Bytes: src, Body: hcl.EmptyBody()})
		return nil, hcl.Diagnostics{d}
	}
	f, diags := parser.ParseJSON(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	attrs, more := f.Body.JustAttributes()
	diags = append(diags, more...)
	if diags.HasErrors() {
		return nil, diags
	}
	t := &legacyTemplate{filename: path}
	for _, name := range sortedKeys(attrs) {
		a := attrs[name]
		switch name {
		case "variables":
			kvs, more := jsonObject(a.Expr, "variables")
			diags = append(diags, more...)
			for _, kv := range kvs {
				v := legacyVar{name: kv.key, nameRange: kv.keyRange, def: kv.expr}
				if val, _ := kv.expr.Value(nil); val.IsNull() {
					v.def = nil
				}
				t.vars = append(t.vars, v)
			}
		case "sensitive-variables":
			items, more := jsonList(a.Expr, "sensitive-variables")
			diags = append(diags, more...)
			for _, it := range items {
				s, more := jsonString(it, "sensitive-variables entry")
				diags = append(diags, more...)
				t.sensitive = append(t.sensitive, jsonKV{key: s, keyRange: it.Range(), expr: it})
			}
		case "builders":
			items, more := jsonList(a.Expr, "builders")
			diags = append(diags, more...)
			for _, it := range items {
				o, more := legacyDefinition(it, "builder", false)
				diags = append(diags, more...)
				if o != nil {
					t.builders = append(t.builders, o)
				}
			}
		case "provisioners":
			items, more := jsonList(a.Expr, "provisioners")
			diags = append(diags, more...)
			for _, it := range items {
				o, more := legacyDefinition(it, "provisioner", false)
				diags = append(diags, more...)
				if o != nil {
					t.provisioners = append(t.provisioners, o)
				}
			}
		case "error-cleanup-provisioner":
			o, more := legacyDefinition(a.Expr, "error-cleanup-provisioner", false)
			diags = append(diags, more...)
			t.errorCleanup = o
		case "post-processors":
			chains, more := parsePostProcessors(a.Expr)
			diags = append(diags, more...)
			t.postProcessors = chains
		case "min_packer_version":
			// kiln has no Packer version to compare with; accepted as Packer
			// accepts packer { required_version } in HCL2.
			_, more := jsonString(a.Expr, "min_packer_version")
			diags = append(diags, more...)
		case "description":
			t.description, more = jsonString(a.Expr, "description")
			diags = append(diags, more...)
		default:
			if strings.HasPrefix(name, "_") {
				continue
			}
			detail := fmt.Sprintf("A legacy JSON template may contain %s.", strings.Join(legacyRootKeys, ", "))
			if s := suggest(name, legacyRootKeys); s != "" {
				detail = fmt.Sprintf("Did you mean %q? ", s) + detail
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Unknown root level key %q", name),
				Detail:   detail,
				Subject:  a.NameRange.Ptr(),
			})
		}
	}
	if _, ok := attrs["builders"]; !ok && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No builders in the template",
			Detail:   "A legacy JSON template needs a \"builders\" list, e.g. \"builders\": [{\"type\": \"qemu\", ...}]. (An HCL2 template in JSON syntax must be named *.pkr.json, in HCL syntax *.pkr.hcl.)",
			Subject:  f.Body.MissingItemRange().Ptr(),
		})
	}
	return t, diags
}

// parsePostProcessors reads Packer's three forms: each element of the
// list is a chain; a string or object is a chain of one, a list a chain
// of several.
func parsePostProcessors(expr hcl.Expression) ([][]*legacyObject, hcl.Diagnostics) {
	items, diags := jsonList(expr, "post-processors")
	var chains [][]*legacyObject
	for _, it := range items {
		var elems []hcl.Expression
		if kindOf(it).IsTupleType() {
			var more hcl.Diagnostics
			elems, more = hcl.ExprList(it)
			diags = append(diags, more...)
		} else {
			elems = []hcl.Expression{it}
		}
		var chain []*legacyObject
		for _, e := range elems {
			o, more := legacyDefinition(e, "post-processor", true)
			diags = append(diags, more...)
			if o != nil {
				chain = append(chain, o)
			}
		}
		if len(chain) > 0 {
			chains = append(chains, chain)
		}
	}
	return chains, diags
}

// jsonSyntaxError is the position and message of src's first JSON syntax
// error, or nil.
func jsonSyntaxError(path string, src []byte) *hcl.Diagnostic {
	var v any
	err := json.Unmarshal(src, &v)
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return nil
	}
	// Offset counts the bytes read, including the offending one; an
	// unexpected end points past the last byte.
	off := int(syn.Offset)
	if off > 0 && off <= len(src) && !strings.Contains(syn.Error(), "unexpected end") {
		off--
	}
	pos := posAt(src, off)
	end := pos
	if off < len(src) {
		end = posAt(src, off+1)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid JSON",
		Detail:   strings.ToUpper(syn.Error()[:1]) + syn.Error()[1:] + ".",
		Subject:  &hcl.Range{Filename: path, Start: pos, End: end},
	}
}

// posAt is the line:column (in characters) of byte offset off.
func posAt(src []byte, off int) hcl.Pos {
	off = min(max(off, 0), len(src))
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	ls := bytes.LastIndexByte(src[:off], '\n') + 1
	return hcl.Pos{Line: line, Column: 1 + utf8.RuneCount(src[ls:off]), Byte: off}
}
