package config

// Legacy JSON templates interpolate strings with Go's text/template and a
// set of Packer functions ({{user `x`}}, {{timestamp}}, ...). Some
// placeholders cannot be rendered while loading: {{ .HTTPIP }} in a boot
// command, {{ .Path }} in an execute_command, {{ .ChecksumType }} in a
// post-processor's output are rendered later by whoever knows their
// value, exactly as they are for HCL2 templates. So a string is not
// executed as one template: each {{ action }} is looked at on its own,
// rendered now when it only calls functions, and kept byte for byte when
// it refers to data (a field, a variable, the dot) or is control flow.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// legacySegment is a piece of a legacy template string: literal text, or
// one {{ action }}.
type legacySegment struct {
	text   string
	action bool
}

// splitActions cuts s into text and {{ action }} segments. Quotes and raw
// strings inside an action may contain "}}".
func splitActions(s string) ([]legacySegment, error) {
	var out []legacySegment
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if s != "" {
				out = append(out, legacySegment{text: s})
			}
			return out, nil
		}
		if i > 0 {
			out = append(out, legacySegment{text: s[:i]})
		}
		end := -1
		var quote byte
		for j := i + 2; j < len(s); j++ {
			c := s[j]
			switch {
			case quote != 0:
				if c == '\\' && quote == '"' {
					j++
				} else if c == quote {
					quote = 0
				}
			case c == '"' || c == '`':
				quote = c
			case c == '}' && j+1 < len(s) && s[j+1] == '}':
				end = j + 2
			}
			if end >= 0 {
				break
			}
		}
		if end < 0 {
			return nil, fmt.Errorf("unclosed action %q: a {{ needs its }}", truncate(s[i:], 30))
		}
		out = append(out, legacySegment{text: s[i:end], action: true})
		s = s[end:]
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// laterKeywords start actions that are template control flow: they belong
// to templates rendered later (an execute_command's {{if .Sudo}}).
var laterKeywords = []string{"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}

// isLaterAction reports whether an action must be kept for later
// rendering: control flow, or any reference to data.
func isLaterAction(action string) (bool, error) {
	inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(action, "{{"), "}}"))
	inner = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(inner, "-"), "-"))
	first := inner
	if i := strings.IndexAny(inner, " \t\n("); i >= 0 {
		first = inner[:i]
	}
	for _, k := range laterKeywords {
		if first == k {
			return true, nil
		}
	}
	// Functions are checked when the action is executed; here only the
	// shape matters.
	tr := parse.New("t")
	tr.Mode = parse.SkipFuncCheck
	if _, err := tr.Parse(action, "{{", "}}", map[string]*parse.Tree{}); err != nil {
		return false, err
	}
	later := false
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			if len(n.Decl) > 0 {
				later = true
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode, *parse.ChainNode, *parse.VariableNode, *parse.DotNode:
			later = true
		}
	}
	walk(tr.Root)
	return later, nil
}

// renderLegacy renders the functions in s with funcs and keeps the
// actions that belong to later rendering.
func renderLegacy(s string, funcs template.FuncMap) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	segs, err := splitActions(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, seg := range segs {
		if !seg.action {
			b.WriteString(seg.text)
			continue
		}
		later, err := isLaterAction(seg.text)
		if err != nil {
			return "", cleanTemplateErr(err)
		}
		if later {
			b.WriteString(seg.text)
			continue
		}
		t, err := template.New("t").Funcs(funcs).Option("missingkey=error").Parse(seg.text)
		if err != nil {
			return "", cleanTemplateErr(err)
		}
		if err := t.Execute(&b, nil); err != nil {
			return "", cleanTemplateErr(err)
		}
	}
	return b.String(), nil
}

var templateErrPrefix = regexp.MustCompile(`^template: t:\d+(:\d+)?: (executing "t" at <[^>]*>: error calling \w+: )?`)

// cleanTemplateErr drops text/template's "template: t:1: executing ..."
// noise, which names a template the user never wrote.
func cleanTemplateErr(err error) error {
	return fmt.Errorf("%s", templateErrPrefix.ReplaceAllString(err.Error(), ""))
}

// legacyFuncNames are the functions Packer offers legacy JSON templates
// that kiln implements.
var legacyFuncNames = []string{
	"user", "env", "timestamp", "isotime", "uuid", "build_name", "build_type",
	"template_dir", "pwd", "split", "replace", "replace_all", "lower", "upper",
	"clean_resource_name",
}

// legacyScope is what the functions of one string can see.
type legacyScope struct {
	user        func(name string) (string, error)
	inVariables bool
	buildName   string // empty in variables
	env         map[string]string
	templateDir string
	pwd         string
	timestamp   string
	isotime     func(layout ...string) (string, error)
	uuid        func() string
}

func (s *legacyScope) funcs() template.FuncMap {
	build := func(what, val string) func() (string, error) {
		return func() (string, error) {
			if s.buildName == "" {
				return "", fmt.Errorf("%s is not available in variables: it names the builder, and variables are shared by all builders", what)
			}
			return val, nil
		}
	}
	return template.FuncMap{
		"user": s.user,
		"env": func(name string) (string, error) {
			if !s.inVariables {
				return "", fmt.Errorf("env can only be used in the default value of a variable (as in Packer): declare a variable such as \"%s\": \"{{env `%s`}}\" and use {{user `%s`}} here", strings.ToLower(name), name, strings.ToLower(name))
			}
			return s.env[name], nil
		},
		"timestamp":    func() string { return s.timestamp },
		"isotime":      s.isotime,
		"uuid":         s.uuid,
		"build_name":   build("build_name", s.buildName),
		"build_type":   build("build_type", "qemu"),
		"template_dir": func() string { return s.templateDir },
		"pwd":          func() string { return s.pwd },
		"split": func(str, sep string, n int) (string, error) {
			parts := strings.Split(str, sep)
			if n < 0 || n >= len(parts) {
				return "", fmt.Errorf("split: %q split by %q has %d parts, no part %d", str, sep, len(parts), n)
			}
			return parts[n], nil
		},
		"replace":             func(old, new string, n int, str string) string { return strings.Replace(str, old, new, n) },
		"replace_all":         func(old, new, str string) string { return strings.ReplaceAll(str, old, new) },
		"lower":               strings.ToLower,
		"upper":               strings.ToUpper,
		"clean_resource_name": cleanResourceName,
	}
}

var invalidResourceChars = regexp.MustCompile(`[^a-z0-9-]`)

// cleanResourceName is clean_resource_name as Packer's cloud builders
// define it (each its own way; this is the common GCE form): lower case,
// every other character but letters, digits and dashes becomes a dash.
func cleanResourceName(s string) string {
	return invalidResourceChars.ReplaceAllString(strings.ToLower(s), "-")
}

// legacyTimestamp is {{timestamp}}: Unix seconds, as Packer's.
func legacyTimestamp(unix int64) string { return strconv.FormatInt(unix, 10) }
