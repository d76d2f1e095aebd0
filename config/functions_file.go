package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// The file functions resolve relative paths against the template directory
// (path.root), which is what Packer does: its Functions(basedir) passes the
// template directory to go-cty-funcs' file, fileexists, fileset and to its
// own templatefile, and those join relative paths onto it. (Packer's
// *provisioner* script paths, by contrast, are relative to the working
// directory at run time; kiln leaves those strings untouched.)
func resolveIn(root, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(root, p)
}

func readUTF8(root, p string) (string, error) {
	full := resolveIn(root, p)
	b, err := os.ReadFile(full)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("no file exists at %s (relative paths are resolved against the template directory %s)", full, root)
		}
		return "", fmt.Errorf("reading %s: %w", full, err)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("contents of %s are not valid UTF-8", full)
	}
	return string(b), nil
}

func fileFunc(root string) function.Function {
	return stringFunc(func(p string) (string, error) {
		return readUTF8(root, p)
	})
}

func fileExistsFunc(root string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			full := resolveIn(root, args[0].AsString())
			fi, err := os.Stat(full)
			if err != nil {
				if os.IsNotExist(err) {
					return cty.False, nil
				}
				return cty.UnknownVal(cty.Bool), fmt.Errorf("checking %s: %w", full, err)
			}
			if !fi.Mode().IsRegular() {
				return cty.UnknownVal(cty.Bool), fmt.Errorf("%s is not a regular file", full)
			}
			return cty.True, nil
		},
	})
}

// fileSetFunc is fileset(path, pattern): the regular files under path
// matching pattern, as paths relative to path with forward slashes.
// Pattern syntax: * and ? within one path segment, [class], and ** for
// any number of segments (the doublestar syntax Packer uses).
func fileSetFunc(root string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "pattern", Type: cty.String},
		},
		Type: function.StaticReturnType(cty.Set(cty.String)),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			base := resolveIn(root, args[0].AsString())
			pattern := args[1].AsString()
			re, err := segmentGlob(pattern)
			if err != nil {
				return cty.UnknownVal(cty.Set(cty.String)), fmt.Errorf("invalid pattern %q: %w", pattern, err)
			}
			var found []cty.Value
			err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.Type().IsRegular() {
					return nil
				}
				rel, err := filepath.Rel(base, p)
				if err != nil {
					return err
				}
				rel = filepath.ToSlash(rel)
				if re.MatchString(rel) {
					found = append(found, cty.StringVal(rel))
				}
				return nil
			})
			if err != nil && !os.IsNotExist(err) {
				return cty.UnknownVal(cty.Set(cty.String)), fmt.Errorf("listing %s: %w", base, err)
			}
			if len(found) == 0 {
				return cty.SetValEmpty(cty.String), nil
			}
			return cty.SetVal(found), nil
		},
	})
}

// segmentGlob turns a slash-separated glob into an anchored regexp.
func segmentGlob(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '*' && strings.HasPrefix(pattern[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 2
		case c == '*' && strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(pattern[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [")
			}
			class := pattern[i+1 : i+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end
		case c == '\\' && i+1 < len(pattern):
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

var noRecursiveTemplateFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "path", Type: cty.String}, {Name: "vars", Type: cty.DynamicPseudoType}},
	Type: func([]cty.Value) (cty.Type, error) {
		return cty.NilType, fmt.Errorf("cannot recursively call templatefile from inside templatefile")
	},
})

// templateFileFunc is templatefile(path, vars): the file is HCL template
// syntax (${...}, %{ if }, %{ for }) rendered with vars as its only
// variables and the full function table except templatefile itself.
func templateFileFunc(root string, funcs func() map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			src, err := readUTF8(root, p)
			if err != nil {
				return cty.UnknownVal(cty.String), err
			}
			vars := args[1]
			if !(vars.Type().IsObjectType() || vars.Type().IsMapType()) {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(1, "vars must be an object or a map, e.g. { name = \"value\" }")
			}
			expr, diags := hclsyntax.ParseTemplate([]byte(src), resolveIn(root, p), hcl.Pos{Line: 1, Column: 1})
			if diags.HasErrors() {
				return cty.UnknownVal(cty.String), fmt.Errorf("parsing template %s: %s", p, diags.Error())
			}
			varMap := map[string]cty.Value{}
			if !vars.IsNull() {
				for it := vars.ElementIterator(); it.Next(); {
					k, v := it.Element()
					varMap[k.AsString()] = v
				}
			}
			for _, tr := range expr.Variables() {
				if _, ok := varMap[tr.RootName()]; !ok {
					return cty.UnknownVal(cty.String), function.NewArgErrorf(1,
						"vars map does not contain key %q, referenced at %s", tr.RootName(), tr.SourceRange())
				}
			}
			out, diags := expr.Value(&hcl.EvalContext{Variables: varMap, Functions: funcs()})
			if diags.HasErrors() {
				return cty.UnknownVal(cty.String), fmt.Errorf("rendering template %s: %s", p, diags.Error())
			}
			out, err = convert.Convert(out, cty.String)
			if err != nil {
				return cty.UnknownVal(cty.String), fmt.Errorf("template %s did not produce a string: %w", p, err)
			}
			return out, nil
		},
	})
}

// sortedKeys is a small helper used across the loader for deterministic
// output order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
