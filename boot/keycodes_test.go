package boot

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestKeycodeSenderChords(t *testing.T) {
	var got [][]uint32
	s := &KeycodeSender{Send: func(ctx context.Context, codes []uint32, hold time.Duration) error {
		got = append(got, append([]uint32(nil), codes...))
		return nil
	}}
	actions, err := Parse("aB<leftCtrlOn>c<leftCtrlOff>d<enter>")
	if err != nil {
		t.Fatal(err)
	}
	if err := Type(context.Background(), actions, s, TypeOptions{KeyInterval: -1}); err != nil {
		t.Fatal(err)
	}
	// KEY_A; Shift+KEY_B; Ctrl held over KEY_C; KEY_D alone again; Enter.
	want := [][]uint32{{30}, {42, 48}, {29, 46}, {32}, {28}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("chords = %v, want %v", got, want)
	}
}

func TestLinuxKeycodeCoversEveryKey(t *testing.T) {
	for _, name := range SpecialKeyNames() {
		k, _ := SpecialKey(name)
		if _, err := LinuxKeycode(k); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for r := rune(0x20); r < 0x7f; r++ {
		if _, err := LinuxKeycode(Key{Rune: r}); err != nil {
			t.Errorf("%q: %v", r, err)
		}
	}
}
