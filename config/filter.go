package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Filter applies Packer's -only and -except to builds. Both take globs
// matched against the whole Build.Name (Packer's CoreBuild.Name()): so
// "qemu.debian" or "*.debian" select an unnamed build's qemu.debian, while
// a build in a block named "web" is "web.qemu.debian" and is matched by
// "web.*" or "*.debian" but not by "qemu.*". The glob syntax is that of
// gobwas/glob without separators, which Packer uses: * matches any run of
// characters including dots, ? one character, [abc] / [!abc] / [a-z] a
// class, {a,b} alternatives, and \ escapes. A build must match one of
// only (when only is given) and none of except.
func Filter(builds []*Build, only, except []string) ([]*Build, error) {
	onlyRe, err := compileGlobs("only", only)
	if err != nil {
		return nil, err
	}
	exceptRe, err := compileGlobs("except", except)
	if err != nil {
		return nil, err
	}
	var out []*Build
	for _, b := range builds {
		if len(onlyRe) > 0 && !matchAny(onlyRe, b.Name) {
			continue
		}
		if matchAny(exceptRe, b.Name) {
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func compileGlobs(flag string, globs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, g := range globs {
		re, err := globRegexp(g)
		if err != nil {
			return nil, fmt.Errorf("invalid -%s pattern %q: %w", flag, g, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// globRegexp translates a separator-less gobwas-style glob to an anchored
// regular expression.
func globRegexp(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	depth := 0 // inside {…}
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '\\':
			if i+1 >= len(g) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		case '[':
			end := strings.IndexByte(g[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [")
			}
			class := g[i+1 : i+1+end]
			if class == "" {
				return nil, fmt.Errorf("empty []")
			}
			if class[0] == '!' {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += end + 1
		case '{':
			depth++
			b.WriteString("(?:")
		case '}':
			if depth == 0 {
				return nil, fmt.Errorf("unmatched }")
			}
			depth--
			b.WriteString(")")
		case ',':
			if depth > 0 {
				b.WriteString("|")
			} else {
				b.WriteString(",")
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unclosed {")
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
