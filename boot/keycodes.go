package boot

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// linuxKeycodes maps QKeyCodes to Linux input event codes
// (linux/input-event-codes.h), the keycode set libvirt's virDomainSendKey
// accepts as VIR_KEYCODE_SET_LINUX on every hypervisor driver.
var linuxKeycodes = map[string]uint32{
	"esc": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11,
	"minus": 12, "equal": 13, "backspace": 14, "tab": 15,
	"q": 16, "w": 17, "e": 18, "r": 19, "t": 20, "y": 21, "u": 22, "i": 23, "o": 24, "p": 25,
	"bracket_left": 26, "bracket_right": 27, "ret": 28, "ctrl": 29,
	"a": 30, "s": 31, "d": 32, "f": 33, "g": 34, "h": 35, "j": 36, "k": 37, "l": 38,
	"semicolon": 39, "apostrophe": 40, "grave_accent": 41, "shift": 42, "backslash": 43,
	"z": 44, "x": 45, "c": 46, "v": 47, "b": 48, "n": 49, "m": 50,
	"comma": 51, "dot": 52, "slash": 53, "shift_r": 54, "alt": 56, "spc": 57,
	"f1": 59, "f2": 60, "f3": 61, "f4": 62, "f5": 63, "f6": 64, "f7": 65, "f8": 66, "f9": 67, "f10": 68,
	"f11": 87, "f12": 88, "ctrl_r": 97, "alt_r": 100,
	"home": 102, "up": 103, "pgup": 104, "left": 105, "right": 106, "end": 107, "down": 108,
	"pgdn": 109, "insert": 110, "delete": 111, "meta_l": 125, "meta_r": 126, "compose": 127,
}

// LinuxKeycode returns the Linux input event code of k's physical key on a
// US keyboard (Shift not included: 'A' gives KEY_A).
func LinuxKeycode(k Key) (uint32, error) {
	q, _, err := QCode(k)
	if err != nil {
		return 0, err
	}
	code, ok := linuxKeycodes[q]
	if !ok {
		return 0, fmt.Errorf("no Linux keycode for %s (qcode %s)", k, q)
	}
	return code, nil
}

// KeycodeSender types through an API that can only press a set of keys
// together and release them after a hold time, such as libvirt's
// virDomainSendKey. A burst becomes one chord: its key-down events, plus
// every key a <...On> action still holds. Key-up events release nothing
// themselves; they end the chord, and a held key is dropped from later
// chords by its <...Off>. Hold-only bursts send nothing: the key goes down
// with the next press, which is what the guest observes as holding it.
type KeycodeSender struct {
	// Send presses codes together, holds them HoldTime, releases them.
	Send     func(ctx context.Context, codes []uint32, hold time.Duration) error
	HoldTime time.Duration

	held []uint32 // keys held by Hold actions, in press order
}

// Keys implements Sender.
func (s *KeycodeSender) Keys(ctx context.Context, events []KeyEvent) error {
	var chord []uint32
	downs := map[uint32]bool{}
	ups := map[uint32]bool{}
	for _, e := range events {
		code, err := LinuxKeycode(e.Key)
		if err != nil {
			return err
		}
		if e.Down {
			if !downs[code] {
				chord = append(chord, code)
			}
			downs[code] = true
		} else {
			ups[code] = true
		}
	}
	// A key that goes down and not up in this burst is a Hold: remember
	// it for the following chords. A key that only goes up is a Release.
	for _, code := range chord {
		if !ups[code] && !slices.Contains(s.held, code) {
			s.held = append(s.held, code)
		}
	}
	var pressed []uint32
	for code := range ups {
		if !downs[code] {
			s.held = slices.DeleteFunc(s.held, func(x uint32) bool { return x == code })
		}
	}
	for _, code := range chord {
		if ups[code] {
			pressed = append(pressed, code)
		}
	}
	if len(pressed) == 0 {
		return nil
	}
	all := append([]uint32{}, s.held...)
	for _, code := range pressed {
		if !slices.Contains(all, code) {
			all = append(all, code)
		}
	}
	return s.Send(ctx, all, s.HoldTime)
}
