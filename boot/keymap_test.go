package boot

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
)

func TestQCodeShiftedSet(t *testing.T) {
	// The characters that need Shift on a US keyboard and the key they sit on.
	shifted := map[rune]string{
		'_': "minus", '!': "1", '<': "comma", '>': "dot", '|': "backslash",
		'~': "grave_accent", '"': "apostrophe", ':': "semicolon", '?': "slash",
		'{': "bracket_left", '}': "bracket_right", '+': "equal", '@': "2",
		'#': "3", '$': "4", '%': "5", '^': "6", '&': "7", '*': "8", '(': "9", ')': "0",
	}
	for r := 'A'; r <= 'Z'; r++ {
		shifted[r] = string(unicode.ToLower(r))
	}
	for r, want := range shifted {
		code, shift, err := QCode(Char(r))
		if err != nil || code != want || !shift {
			t.Errorf("QCode(%q) = %q, %v, %v; want %q, true", r, code, shift, err, want)
		}
		if !NeedsShift(Char(r)) {
			t.Errorf("NeedsShift(%q) = false", r)
		}
	}
	unshifted := map[rune]string{
		'a': "a", 'z': "z", '0': "0", '9': "9", '-': "minus", '=': "equal",
		'[': "bracket_left", ']': "bracket_right", '\\': "backslash", ';': "semicolon",
		'\'': "apostrophe", '`': "grave_accent", ',': "comma", '.': "dot", '/': "slash", ' ': "spc",
	}
	for r, want := range unshifted {
		code, shift, err := QCode(Char(r))
		if err != nil || code != want || shift {
			t.Errorf("QCode(%q) = %q, %v, %v; want %q, false", r, code, shift, err, want)
		}
	}
}

// qemuQCodes are QKeyCode names from QEMU's QAPI schema (qapi/ui.json) for
// the keys a boot command can reach.
var qemuQCodes = strings.Fields(`shift shift_r alt alt_r ctrl ctrl_r menu esc
	1 2 3 4 5 6 7 8 9 0 minus equal backspace tab q w e r t y u i o p ret
	a s d f g h j k l z x c v b n m comma dot slash apostrophe semicolon
	grave_accent backslash bracket_left bracket_right spc caps_lock
	f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12 home pgup pgdn end left up down
	right insert delete meta_l meta_r compose`)

func TestSpecialQCodesAndKeysyms(t *testing.T) {
	valid := map[string]bool{}
	for _, q := range qemuQCodes {
		valid[q] = true
	}
	want := map[string]struct {
		qcode string
		sym   uint32
	}{
		"bs": {"backspace", 0xFF08}, "del": {"delete", 0xFFFF}, "enter": {"ret", 0xFF0D},
		"esc": {"esc", 0xFF1B}, "tab": {"tab", 0xFF09}, "spacebar": {"spc", 0x20},
		"insert": {"insert", 0xFF63}, "home": {"home", 0xFF50}, "end": {"end", 0xFF57},
		"pageUp": {"pgup", 0xFF55}, "pageDown": {"pgdn", 0xFF56},
		"up": {"up", 0xFF52}, "down": {"down", 0xFF54}, "left": {"left", 0xFF51}, "right": {"right", 0xFF53},
		"menu": {"compose", 0xFF67}, "f1": {"f1", 0xFFBE}, "f5": {"f5", 0xFFC2}, "f12": {"f12", 0xFFC9},
		"leftAlt": {"alt", 0xFFE9}, "rightAlt": {"alt_r", 0xFFEA},
		"leftCtrl": {"ctrl", 0xFFE3}, "rightCtrl": {"ctrl_r", 0xFFE4},
		"leftShift": {"shift", 0xFFE1}, "rightShift": {"shift_r", 0xFFE2},
		"leftSuper": {"meta_l", 0xFFEB}, "rightSuper": {"meta_r", 0xFFEC},
		"leftCommand": {"alt", 0xFFE9}, "rightCommand": {"alt_r", 0xFFEA},
		"leftOption": {"alt", 0xFFE7}, "rightOption": {"alt_r", 0xFFE8},
	}
	for _, name := range SpecialKeyNames() {
		k := Key{Name: name}
		code, shift, err := QCode(k)
		if err != nil || shift || !valid[code] {
			t.Errorf("QCode(%s) = %q, %v, %v; want a valid QKeyCode without shift", k, code, shift, err)
		}
		sym, shift, err := Keysym(k)
		if err != nil || shift {
			t.Errorf("Keysym(%s) = %#x, %v, %v", k, sym, shift, err)
		}
		if w, ok := want[name]; ok && (w.qcode != code || w.sym != sym) {
			t.Errorf("%s = (%q, %#x), want (%q, %#x)", k, code, sym, w.qcode, w.sym)
		}
		if NeedsShift(k) {
			t.Errorf("NeedsShift(%s) = true", k)
		}
	}
	for i := 1; i <= 12; i++ {
		k := Key{Name: fmt.Sprintf("f%d", i)}
		sym, _, err := Keysym(k)
		if err != nil || sym != 0xFFBE+uint32(i-1) {
			t.Errorf("Keysym(%s) = %#x, %v", k, sym, err)
		}
	}
}

// TestEveryPrintableASCII checks the whole US map: every printable character
// is typable, QMP and VNC agree on Shift, VNC's shifted set is exactly
// Packer's (capitals plus ~!@#$%^&*()_+{}|:"<>?), keysyms are code points,
// and no two characters land on the same key+Shift.
func TestEveryPrintableASCII(t *testing.T) {
	const packerShifted = "~!@#$%^&*()_+{}|:\"<>?"
	seen := map[usKey]rune{}
	for r := rune(0x20); r <= 0x7E; r++ {
		k := Char(r)
		code, qshift, err := QCode(k)
		if err != nil || !qemuHas(code) {
			t.Errorf("QCode(%q) = %q, %v", r, code, err)
			continue
		}
		sym, vshift, err := Keysym(k)
		if err != nil || sym != uint32(r) {
			t.Errorf("Keysym(%q) = %#x, %v; want %#x", r, sym, err, r)
		}
		wantShift := unicode.IsUpper(r) || strings.ContainsRune(packerShifted, r)
		if qshift != wantShift || vshift != wantShift || NeedsShift(k) != wantShift {
			t.Errorf("%q: QCode shift %v, Keysym shift %v, NeedsShift %v; want %v", r, qshift, vshift, NeedsShift(k), wantShift)
		}
		if prev, dup := seen[usKey{code, qshift}]; dup {
			t.Errorf("%q and %q both map to %q shift=%v", prev, r, code, qshift)
		}
		seen[usKey{code, qshift}] = r
	}
}

func qemuHas(code string) bool {
	for _, q := range qemuQCodes {
		if q == code {
			return true
		}
	}
	return false
}

func TestUntypableKeys(t *testing.T) {
	for _, k := range []Key{Char('é'), Char('界'), Char('\n'), Char(0x7F), {Name: "printScreen"}} {
		if _, _, err := QCode(k); err == nil {
			t.Errorf("QCode(%+v) succeeded, want error", k)
		}
		if _, _, err := Keysym(k); err == nil {
			t.Errorf("Keysym(%+v) succeeded, want error", k)
		}
	}
}

func TestSpecialKeyLookup(t *testing.T) {
	for in, want := range map[string]string{"ENTER": "enter", "Return": "enter", "pageup": "pageUp", "LEFTCTRL": "leftCtrl"} {
		k, ok := SpecialKey(in)
		if !ok || k.Name != want {
			t.Errorf("SpecialKey(%q) = %+v, %v; want %q", in, k, ok, want)
		}
	}
	if _, ok := SpecialKey("ctrl"); ok {
		t.Error("SpecialKey(ctrl) accepted a name Packer does not know")
	}
}
