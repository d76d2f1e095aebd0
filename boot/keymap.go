package boot

import (
	"fmt"
	"github.com/kilnbuild/kiln/internal/textdist"
	"strings"
)

// special describes one named key: its QEMU QKeyCode (QMP
// input-send-event) and its X11 keysym (VNC KeyEvent).
type special struct {
	name   string // canonical spelling, as documented by Packer
	qcode  string
	keysym uint32
}

// specials lists every special key, in the order Packer documents them.
// Keysyms are those of Packer's VNC driver (sdk bootcommand/vnc_driver.go),
// so VNC typing sends the same bytes Packer sends. QKeyCodes are what QEMU's
// en-us keymap turns those keysyms into, so QMP typing presses the same
// physical key the VNC path does; that is why <menu> is "compose" (the PC
// application key, keysym Menu) and not QEMU's "menu" (a media key), and why
// the macOS names map to Alt like Packer's keysyms do.
var specials = []special{
	{"bs", "backspace", 0xFF08},
	{"del", "delete", 0xFFFF},
	{"enter", "ret", 0xFF0D},
	{"esc", "esc", 0xFF1B},
	{"tab", "tab", 0xFF09},
	{"spacebar", "spc", 0x0020},
	{"insert", "insert", 0xFF63},
	{"home", "home", 0xFF50},
	{"end", "end", 0xFF57},
	{"pageUp", "pgup", 0xFF55},
	{"pageDown", "pgdn", 0xFF56},
	{"up", "up", 0xFF52},
	{"down", "down", 0xFF54},
	{"left", "left", 0xFF51},
	{"right", "right", 0xFF53},
	{"menu", "compose", 0xFF67},
	{"f1", "f1", 0xFFBE},
	{"f2", "f2", 0xFFBF},
	{"f3", "f3", 0xFFC0},
	{"f4", "f4", 0xFFC1},
	{"f5", "f5", 0xFFC2},
	{"f6", "f6", 0xFFC3},
	{"f7", "f7", 0xFFC4},
	{"f8", "f8", 0xFFC5},
	{"f9", "f9", 0xFFC6},
	{"f10", "f10", 0xFFC7},
	{"f11", "f11", 0xFFC8},
	{"f12", "f12", 0xFFC9},
	{"leftAlt", "alt", 0xFFE9},
	{"rightAlt", "alt_r", 0xFFEA},
	{"leftCtrl", "ctrl", 0xFFE3},
	{"rightCtrl", "ctrl_r", 0xFFE4},
	{"leftShift", "shift", 0xFFE1},
	{"rightShift", "shift_r", 0xFFE2},
	{"leftSuper", "meta_l", 0xFFEB},
	{"rightSuper", "meta_r", 0xFFEC},
	{"leftCommand", "alt", 0xFFE9},    // Alt_L, as Packer's VNC driver sends
	{"rightCommand", "alt_r", 0xFFEA}, // Alt_R
	{"leftOption", "alt", 0xFFE7},     // Meta_L; QEMU's en-us keymap puts it on Alt
	{"rightOption", "alt_r", 0xFFE8},  // Meta_R
}

// byName indexes specials by lowercase name; "return" is Packer's synonym
// for "enter".
var byName = func() map[string]special {
	m := make(map[string]special, len(specials)+1)
	for _, s := range specials {
		m[strings.ToLower(s.name)] = s
	}
	m["return"] = m["enter"]
	return m
}()

// ShiftKey is the key the typer holds for characters that need Shift.
var ShiftKey = Key{Name: "leftShift"}

// SpecialKey looks up a special key by name, case-insensitively, and
// returns it with its canonical name ("RETURN" gives Key{Name: "enter"}).
func SpecialKey(name string) (Key, bool) {
	s, ok := byName[strings.ToLower(name)]
	if !ok {
		return Key{}, false
	}
	return Key{Name: s.name}, true
}

// SpecialKeyNames returns the canonical names of all special keys.
func SpecialKeyNames() []string {
	names := make([]string, len(specials))
	for i, s := range specials {
		names[i] = s.name
	}
	return names
}

// usKey is where a character sits on a US keyboard.
type usKey struct {
	qcode string
	shift bool
}

// usLayout maps every typable character (printable ASCII) to its US key.
var usLayout = func() map[rune]usKey {
	m := make(map[rune]usKey, 95)
	for r := 'a'; r <= 'z'; r++ {
		m[r] = usKey{string(r), false}
		m[r-'a'+'A'] = usKey{string(r), true}
	}
	for r := '0'; r <= '9'; r++ {
		m[r] = usKey{string(r), false}
	}
	// Unshifted and shifted character on each remaining key.
	for _, k := range []struct {
		plain, shifted rune
		qcode          string
	}{
		{'1', '!', "1"}, {'2', '@', "2"}, {'3', '#', "3"}, {'4', '$', "4"},
		{'5', '%', "5"}, {'6', '^', "6"}, {'7', '&', "7"}, {'8', '*', "8"},
		{'9', '(', "9"}, {'0', ')', "0"},
		{'-', '_', "minus"}, {'=', '+', "equal"},
		{'[', '{', "bracket_left"}, {']', '}', "bracket_right"},
		{'\\', '|', "backslash"}, {';', ':', "semicolon"},
		{'\'', '"', "apostrophe"}, {'`', '~', "grave_accent"},
		{',', '<', "comma"}, {'.', '>', "dot"}, {'/', '?', "slash"},
	} {
		m[k.plain] = usKey{k.qcode, false}
		m[k.shifted] = usKey{k.qcode, true}
	}
	m[' '] = usKey{"spc", false}
	return m
}()

// checkTypable reports whether r can be typed on a US keyboard.
func checkTypable(r rune) error {
	if _, ok := usLayout[r]; ok {
		return nil
	}
	if r < 0x20 || r == 0x7F {
		return fmt.Errorf("control character %U cannot be typed", r)
	}
	return fmt.Errorf("character %q (%U) cannot be typed on a US keyboard", r, r)
}

func typableHint(r rune) string {
	switch r {
	case '\n', '\r':
		return "use <enter> for a line break"
	case '\t':
		return "use <tab>"
	}
	return "kiln types printable ASCII only, as Packer's VNC keysyms reach QEMU's en-us keymap"
}

// NeedsShift reports whether typing k on a US keyboard needs Shift: capital
// letters and ~!@#$%^&*()_+{}|:"<>? (Packer's shifted set). Special keys
// never do.
func NeedsShift(k Key) bool {
	if k.IsSpecial() {
		return false
	}
	return usLayout[k.Rune].shift
}

// QCode returns the QEMU QKeyCode name for k (as used in QMP
// input-send-event {"type":"qcode","data":...}) and whether Shift must be
// held with it on a US layout: '_' is ("minus", true), 'A' is ("a", true).
func QCode(k Key) (code string, shift bool, err error) {
	if k.IsSpecial() {
		s, ok := byName[strings.ToLower(k.Name)]
		if !ok {
			return "", false, fmt.Errorf("unknown special key %s", k)
		}
		return s.qcode, false, nil
	}
	u, ok := usLayout[k.Rune]
	if !ok {
		return "", false, checkTypable(k.Rune)
	}
	return u.qcode, u.shift, nil
}

// Keysym returns the X11 keysym for k (as used in RFB KeyEvent) and whether
// Shift must be sent explicitly: printable ASCII is its code point, specials
// are 0xFFxx. Like Packer, kiln wraps capitals and the shifted punctuation
// in Shift, because QEMU does not add it for keysyms received over VNC.
func Keysym(k Key) (sym uint32, shift bool, err error) {
	if k.IsSpecial() {
		s, ok := byName[strings.ToLower(k.Name)]
		if !ok {
			return 0, false, fmt.Errorf("unknown special key %s", k)
		}
		return s.keysym, false, nil
	}
	u, ok := usLayout[k.Rune]
	if !ok {
		return 0, false, checkTypable(k.Rune)
	}
	return uint32(k.Rune), u.shift, nil
}

// suggestAliases maps names people commonly write to the Packer key they
// mean. Used only for "did you mean" hints, never accepted as keys, so that
// every accepted command types the same under Packer.
var suggestAliases = map[string]string{
	"ctrl": "leftCtrl", "control": "leftCtrl", "lctrl": "leftCtrl", "rctrl": "rightCtrl",
	"leftcontrol": "leftCtrl", "rightcontrol": "rightCtrl",
	"alt": "leftAlt", "lalt": "leftAlt", "ralt": "rightAlt", "altgr": "rightAlt",
	"shift": "leftShift", "lshift": "leftShift", "rshift": "rightShift",
	"super": "leftSuper", "win": "leftSuper", "windows": "leftSuper", "meta": "leftSuper",
	"leftmeta": "leftSuper", "rightmeta": "rightSuper", "cmd": "leftCommand",
	"command": "leftCommand", "option": "leftOption",
	"space": "spacebar", "spc": "spacebar", "backspace": "bs", "delete": "del",
	"escape": "esc", "pgup": "pageUp", "pgdn": "pageDown", "pgdown": "pageDown",
	"ins": "insert", "ret": "enter", "newline": "enter",
}

// suggestKey returns a "<key>" suggestion when body (the text between '<'
// and '>') is plainly an attempt at a special key, or "" when it may be
// meant literally.
func suggestKey(body string) string {
	b := strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(body))
	if b == "" {
		return ""
	}
	for _, suffix := range []string{"", "on", "off"} {
		base, ok := strings.CutSuffix(b, suffix)
		if !ok {
			continue
		}
		if k, ok := SpecialKey(base); ok {
			return "<" + k.Name + capitalize(suffix) + ">"
		}
		if name, ok := suggestAliases[base]; ok {
			return "<" + name + capitalize(suffix) + ">"
		}
	}
	// Near misses. Short words are too often real text ("<br>", "<li>").
	limit := 1
	switch {
	case len(b) < 3:
		return ""
	case len(b) >= 7:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, s := range specials {
		for _, suffix := range []string{"", "On", "Off"} {
			cand := s.name + suffix
			if d := textdist.Distance(b, strings.ToLower(cand)); d < bestD {
				best, bestD = cand, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return "<" + best + ">"
}

func capitalize(s string) string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
