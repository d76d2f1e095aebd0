// Package boot implements Packer's boot command language: parsing
// boot_command strings into key actions, rendering their template
// variables, and typing them into a guest over QMP or VNC.
//
// The parser is hand-written and follows Packer's PEG grammar
// (packer-plugin-sdk bootcommand/boot_command.pigeon) so that a command
// kiln accepts is typed exactly as Packer would type it:
//
//   - any character is a key press; a '<' that does not start a valid
//     token is typed literally, as are the characters after it;
//   - <wait> is one second, <waitN> N seconds, <waitDURATION> a Go
//     duration made of number+unit groups (ns us µs ms s m h); "wait" is
//     lowercase only, as in Packer's grammar;
//   - special key names and the On/Off suffixes are case-insensitive;
//   - <xOn>/<xOff> hold and release any single literal character.
//
// Where Packer would silently type a likely typo literally, kiln refuses
// the command with an error that names the byte offset and a suggestion
// (<entr>, <waitx>, <Wait5>, <ctrl>), because a mistyped key in an
// installer prompt costs a whole build to discover. The heuristics only fire
// for tokens that look like keys; "<foo>" or "a < b" stay literal. Characters
// kiln cannot type on a US keyboard (non-ASCII, control characters) are
// errors too, where Packer would send a keysym QEMU drops.
//
// kiln also accepts <leftCommand> <rightCommand> <leftOption> <rightOption>,
// which Packer's VNC driver maps but its grammar never parses.
package boot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is one step of a parsed boot command: Press, Hold, Release or Wait.
type Action interface{ isAction() }

// Press presses and releases Key (Shift is added by the typer when the
// character needs it).
type Press struct{ Key Key }

// Hold presses Key and keeps it down: <leftCtrlOn>, <cOn>.
type Hold struct{ Key Key }

// Release lets go of Key: <leftCtrlOff>, <cOff>.
type Release struct{ Key Key }

// Wait pauses typing: <wait>, <wait5>, <wait1m30s>, <wait300ms>.
type Wait struct{ D time.Duration }

func (Press) isAction()   {}
func (Hold) isAction()    {}
func (Release) isAction() {}
func (Wait) isAction()    {}

// WaitSerial pauses typing until Text appears on the guest's serial
// console, at most Timeout (zero: the caller's default). A kiln extension:
// <waitSerial "boot:"> or <waitSerial "boot:" 2m>. Packer would type it
// literally.
type WaitSerial struct {
	Text    string
	Timeout time.Duration
}

func (WaitSerial) isAction() {}

// Key is either a special key (Name set, Rune 0) or a literal character
// (Rune set, Name empty).
type Key struct {
	// Name is the canonical special key name, e.g. "enter", "leftShift",
	// "f5", "pageUp". <return> parses as "enter".
	Name string
	// Rune is the literal character for non-special keys; 0 for specials.
	Rune rune
}

// Char returns the Key that types r.
func Char(r rune) Key { return Key{Rune: r} }

// IsSpecial reports whether k is a named special key rather than a character.
func (k Key) IsSpecial() bool { return k.Name != "" }

// String renders k in boot command syntax: "<enter>" for specials, the
// character itself otherwise. Callers that log must not print literal keys:
// boot commands carry passwords.
func (k Key) String() string {
	if k.IsSpecial() {
		return "<" + k.Name + ">"
	}
	return string(k.Rune)
}

// ParseError describes an invalid boot command. Offset is the byte offset in
// the parsed string where the bad token starts.
type ParseError struct {
	Offset  int
	Problem string // what is wrong, e.g. "unknown key <entr>"
	Hint    string // how to fix it, e.g. "did you mean <enter>?"; may be empty
}

func (e *ParseError) Error() string {
	msg := fmt.Sprintf("%s at offset %d", e.Problem, e.Offset)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// maxParseErrors bounds how many problems one Parse reports, so a command
// that is not a boot command at all does not produce a wall of errors.
const maxParseErrors = 10

// Parse turns a boot command into actions. Template actions ({{ ... }})
// must be rendered first (see Render); Validate checks unrendered commands.
// The error, if any, joins one *ParseError per problem found.
func Parse(s string) ([]Action, error) {
	p := parser{s: s}
	p.run()
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return p.out, nil
}

type parser struct {
	s string
	// templates makes the parser skip Go template actions ({{ ... }}) and
	// leave tokens that contain one unchecked; used by Validate, which sees
	// commands before rendering.
	templates bool
	out       []Action
	errs      []error
}

func (p *parser) fail(off int, problem, hint string) {
	if len(p.errs) < maxParseErrors {
		p.errs = append(p.errs, &ParseError{Offset: off, Problem: problem, Hint: hint})
	}
}

func (p *parser) run() {
	s := p.s
	for i := 0; i < len(s); {
		if p.templates && strings.HasPrefix(s[i:], "{{") {
			i += templateActionLen(s[i:])
			continue
		}
		if s[i] == '<' {
			if n := p.token(i); n > 0 {
				i += n
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			p.fail(i, "invalid UTF-8 byte", "")
		} else if err := checkTypable(r); err != nil {
			p.fail(i, err.Error(), typableHint(r))
		} else {
			p.out = append(p.out, Press{Key: Char(r)})
		}
		i += size
	}
}

// token parses the token starting with the '<' at s[i]. It returns the
// number of bytes consumed, or 0 when the '<' is to be typed literally. A
// token that looks like a mistyped key records an error and is consumed.
func (p *parser) token(i int) int {
	s := p.s
	rest := s[i+1:]
	if p.templates {
		if end := strings.IndexByte(rest, '>'); end >= 0 && strings.Contains(rest[:end], "{{") {
			return 0 // e.g. <wait{{ .N }}>: checkable only after rendering
		}
	}
	if strings.HasPrefix(rest, "waitSerial ") {
		return p.waitSerial(i)
	}
	// Packer's ordered choice: Wait / CharToggle / Special / Literal.
	if strings.HasPrefix(rest, "wait") {
		if d, n, ok, err := scanWait(rest[len("wait"):]); ok {
			tok := s[i : i+1+len("wait")+n+1]
			switch {
			case err != nil:
				p.fail(i, "invalid wait "+tok, err.Error())
			case d <= 0:
				p.fail(i, "wait "+tok+" is not positive", "waits must be longer than zero")
			default:
				p.out = append(p.out, Wait{D: d})
			}
			return len(tok)
		}
	}
	if r, size := utf8.DecodeRuneInString(rest); size > 0 && !(r == utf8.RuneError && size == 1) {
		if on, n := scanOnOff(rest[size:]); n > 0 && strings.HasPrefix(rest[size+n:], ">") {
			tok := s[i : i+1+size+n+1]
			if err := checkTypable(r); err != nil {
				p.fail(i, err.Error()+" in "+tok, typableHint(r))
			} else if on {
				p.out = append(p.out, Hold{Key: Char(r)})
			} else {
				p.out = append(p.out, Release{Key: Char(r)})
			}
			return len(tok)
		}
	}
	name := leadingWord(rest)
	if name != "" && strings.HasPrefix(rest[len(name):], ">") {
		tok := s[i : i+1+len(name)+1]
		if k, ok := SpecialKey(name); ok {
			p.out = append(p.out, Press{Key: k})
			return len(tok)
		}
		lower := strings.ToLower(name)
		if base, ok := strings.CutSuffix(lower, "on"); ok {
			if k, ok := SpecialKey(base); ok {
				p.out = append(p.out, Hold{Key: k})
				return len(tok)
			}
		}
		if base, ok := strings.CutSuffix(lower, "off"); ok {
			if k, ok := SpecialKey(base); ok {
				p.out = append(p.out, Release{Key: k})
				return len(tok)
			}
		}
	}
	return p.typo(i)
}

// typo decides whether the '<' at s[i], which starts no valid token, begins
// something the author surely meant as a token. If so it records an error
// and returns the token length; otherwise 0 (type the '<' literally).
func (p *parser) typo(i int) int {
	rest := p.s[i+1:]
	end := strings.IndexByte(rest, '>')
	if end < 0 || end > 40 || strings.ContainsAny(rest[:end], "< \t\r\n") {
		return 0
	}
	body := rest[:end]
	tok := p.s[i : i+1+end+1]
	if len(body) >= 4 && strings.EqualFold(body[:4], "wait") {
		p.fail(i, "invalid wait "+tok, waitHint(body))
		return len(tok)
	}
	if sug := suggestKey(body); sug != "" {
		p.fail(i, "unknown key "+tok, fmt.Sprintf(
			"did you mean %s? (to type the text literally, start it with <<On><<Off> instead of <)", sug))
		return len(tok)
	}
	return 0
}

func waitHint(body string) string {
	if lower := "wait" + body[4:]; body[:4] != "wait" {
		if _, _, ok, err := scanWait(lower[4:] + ">"); ok && err == nil {
			return "did you mean <" + lower + ">? Packer only recognises lowercase wait"
		}
	}
	return "use <wait> (1s), <waitN> for N seconds, or a Go duration such as <wait1m30s> or <wait300ms>"
}

// scanWait parses what follows "<wait" as Packer does:
// (Duration / Integer)? ">", where Duration = (Number TimeUnit)+ and a bare
// Integer is seconds. ok reports whether the token matched the grammar; n
// counts the duration bytes (not the '>'); err reports a matched token whose
// value is unusable (overflow, time.ParseDuration failure).
func scanWait(s string) (d time.Duration, n int, ok bool, err error) {
	if strings.HasPrefix(s, ">") {
		return time.Second, 0, true, nil
	}
	if n = durationLen(s); n > 0 {
		if !strings.HasPrefix(s[n:], ">") {
			return 0, 0, false, nil
		}
		d, err = time.ParseDuration(s[:n])
		return d, n, true, err
	}
	if n = integerLen(s); n > 0 && strings.HasPrefix(s[n:], ">") {
		secs, err := strconv.ParseInt(s[:n], 10, 64)
		if err == nil && secs > int64(time.Duration(1<<63-1)/time.Second) {
			err = fmt.Errorf("%d seconds is too long", secs)
		}
		return time.Duration(secs) * time.Second, n, true, err
	}
	return 0, 0, false, nil
}

// durationLen returns the length of the longest prefix of s matching
// (Number TimeUnit)+, or 0.
func durationLen(s string) int {
	total := 0
	for {
		n := numberLen(s[total:])
		if n == 0 {
			return total
		}
		u := unitLen(s[total+n:])
		if u == 0 {
			return total
		}
		total += n + u
	}
}

// numberLen matches '-'? Integer ('.' Digit+)?.
func numberLen(s string) int {
	i := 0
	if strings.HasPrefix(s, "-") {
		i++
	}
	n := integerLen(s[i:])
	if n == 0 {
		return 0
	}
	i += n
	if strings.HasPrefix(s[i:], ".") {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j > i+1 {
			i = j
		}
	}
	return i
}

// integerLen matches '0' / [1-9][0-9]*.
func integerLen(s string) int {
	if s == "" || !isDigit(s[0]) {
		return 0
	}
	if s[0] == '0' {
		return 1
	}
	i := 1
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// unitLen matches Packer's TimeUnit alternatives, in Packer's order.
func unitLen(s string) int {
	for _, u := range []string{"ns", "us", "µs", "ms", "s", "m", "h"} {
		if strings.HasPrefix(s, u) {
			return len(u)
		}
	}
	return 0
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// scanOnOff matches "on" or "off" case-insensitively at the start of s.
func scanOnOff(s string) (on bool, n int) {
	switch {
	case len(s) >= 2 && strings.EqualFold(s[:2], "on"):
		return true, 2
	case len(s) >= 3 && strings.EqualFold(s[:3], "off"):
		return false, 3
	}
	return false, 0
}

// leadingWord returns the run of ASCII letters and digits at the start of s.
func leadingWord(s string) string {
	i := 0
	for i < len(s) && (isDigit(s[i]) || ('a' <= s[i]|0x20 && s[i]|0x20 <= 'z')) {
		i++
	}
	return s[:i]
}

// templateActionLen returns the length of the Go template action at the
// start of s ("{{" ... "}}"), skipping quoted strings and comments that may
// contain "}}". An unterminated action runs to the end of s; text/template
// reports that error separately.
func templateActionLen(s string) int {
	i := 2
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "}}"):
			return i + 2
		case strings.HasPrefix(s[i:], "/*"):
			if j := strings.Index(s[i+2:], "*/"); j >= 0 {
				i += 2 + j + 2
				continue
			}
			return len(s)
		case s[i] == '"' || s[i] == '\'':
			q := s[i]
			i++
			for i < len(s) && s[i] != q {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			i++
			continue
		case s[i] == '`':
			if j := strings.IndexByte(s[i+1:], '`'); j >= 0 {
				i += 1 + j + 1
				continue
			}
			return len(s)
		}
		i++
	}
	return len(s)
}

// waitSerial parses <waitSerial "TEXT"> or <waitSerial "TEXT" DURATION>
// starting at the '<' at s[i].
func (p *parser) waitSerial(i int) int {
	const hint = `write <waitSerial "text"> or <waitSerial "text" 2m>; the text cannot contain '"'`
	rest := p.s[i+len("<waitSerial "):]
	if !strings.HasPrefix(rest, `"`) {
		p.fail(i, "invalid <waitSerial>", hint)
		return len("<waitSerial ")
	}
	end := strings.IndexByte(rest[1:], '"')
	if end < 0 {
		p.fail(i, "unterminated text in <waitSerial>", hint)
		return len(p.s) - i
	}
	text := rest[1 : 1+end]
	after := rest[1+end+1:]
	close := strings.IndexByte(after, '>')
	if close < 0 || text == "" {
		p.fail(i, "invalid <waitSerial>", hint)
		return len(p.s) - i
	}
	var timeout time.Duration
	if arg := strings.TrimSpace(after[:close]); arg != "" {
		d, err := time.ParseDuration(arg)
		if err != nil || d <= 0 {
			p.fail(i, "invalid timeout "+strconv.Quote(arg)+" in <waitSerial>", hint)
		}
		timeout = d
	}
	p.out = append(p.out, WaitSerial{Text: text, Timeout: timeout})
	return len("<waitSerial ") + 1 + end + 1 + close + 1
}
