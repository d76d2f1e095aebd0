package boot

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"text/template/parse"
)

// TemplateData is what boot command templates can refer to. Field names are
// Packer's (packer-plugin-qemu bootCommandTemplateData).
type TemplateData struct {
	HTTPIP       string // address the guest reaches the HTTP server at (10.0.2.2 with user networking)
	HTTPPort     int    // HTTP server port; 0 when there is no server
	Name         string // vm_name
	SSHPublicKey string // public half of the build's SSH key; use {{ .SSHPublicKey | urlquery }} on a kernel command line
}

// templateFuncs are the functions boot command templates may call besides
// text/template's builtins (urlquery, printf, html, js, len, index, ...).
// They are the pure ones of Packer's interpolation functions; Packer's
// env/user/vault/consul_key/aws_secretsmanager are refused in boot commands
// there too (HCL2 interpolation covers those needs before rendering).
var templateFuncs = template.FuncMap{
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"replace": func(old, new string, n int, src string) string {
		return strings.Replace(src, old, new, n)
	},
	"replace_all": func(old, new, src string) string {
		return strings.ReplaceAll(src, old, new)
	},
	"split": func(s, sep string, i int) (string, error) {
		parts := strings.Split(s, sep)
		if i < 0 || i >= len(parts) {
			return "", fmt.Errorf("split: index %d out of range: %q splits into %d parts", i, sep, len(parts))
		}
		return parts[i], nil
	},
}

// templateName appears in text/template's error messages.
const templateName = "boot_command"

func newTemplate(cmd string) (*template.Template, error) {
	return template.New(templateName).Funcs(templateFuncs).Parse(cmd)
}

// Render expands the Go template actions in a boot command ({{ .HTTPIP }},
// {{ .HTTPPort }}, {{ .Name }}, {{ .SSHPublicKey }}) like Packer does at
// type time. Pass the joined command (strings.Join(boot_command, "")), as
// Packer renders the concatenation. The result may contain secrets; do not
// log it.
func Render(cmd string, data TemplateData) (string, error) {
	t, err := newTemplate(cmd)
	if err != nil {
		return "", fmt.Errorf("parsing boot command template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering boot command template: %w", err)
	}
	return b.String(), nil
}

// Validate checks a boot_command list without rendering it: template syntax,
// template functions and fields, and every key token outside template
// actions. As Packer does, the elements are checked as one concatenated
// command, so a token may span elements; errors name the element and the
// byte offset within it.
func Validate(cmds []string) error {
	joined := strings.Join(cmds, "")
	var errs []error
	if t, err := newTemplate(joined); err != nil {
		errs = append(errs, fmt.Errorf("boot_command template: %w", err))
	} else if err := checkFields(t.Tree.Root, true); err != nil {
		errs = append(errs, fmt.Errorf("boot_command template: %w", err))
	}
	p := parser{s: joined, templates: true}
	p.run()
	for _, e := range p.errs {
		var pe *ParseError
		if !errors.As(e, &pe) {
			errs = append(errs, e)
			continue
		}
		idx, off := locate(cmds, pe.Offset)
		local := *pe
		local.Offset = off
		errs = append(errs, fmt.Errorf("boot_command[%d]: %w", idx, &local))
	}
	return errors.Join(errs...)
}

// locate maps a byte offset in the concatenation of cmds to the element
// index and the offset within that element.
func locate(cmds []string, off int) (idx, local int) {
	for i, c := range cmds {
		if off < len(c) {
			return i, off
		}
		off -= len(c)
	}
	return len(cmds) - 1, off
}

// checkFields reports references to fields TemplateData does not have
// ({{ .HTTPIp }}), which text/template only finds at execution time.
// Inside {{ with }} and {{ range }} the dot is something else, so only
// top-level references are checked (dotIsData).
func checkFields(n parse.Node, dotIsData bool) error {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return nil
	}
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := checkFields(c, dotIsData); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkFields(n.Pipe, dotIsData)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			if err := checkFields(c, dotIsData); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := checkFields(a, dotIsData); err != nil {
				return err
			}
		}
	case *parse.FieldNode:
		if dotIsData {
			if _, ok := reflect.TypeFor[TemplateData]().FieldByName(n.Ident[0]); !ok {
				return fmt.Errorf("unknown field .%s (boot commands have .HTTPIP, .HTTPPort, .Name and .SSHPublicKey)", n.Ident[0])
			}
		}
	case *parse.IfNode:
		return errors.Join(checkFields(n.Pipe, dotIsData), checkFields(n.List, dotIsData), checkFields(n.ElseList, dotIsData))
	case *parse.WithNode:
		return errors.Join(checkFields(n.Pipe, dotIsData), checkFields(n.List, false), checkFields(n.ElseList, dotIsData))
	case *parse.RangeNode:
		return errors.Join(checkFields(n.Pipe, dotIsData), checkFields(n.List, false), checkFields(n.ElseList, dotIsData))
	}
	return nil
}
