package boot

import (
	"context"
	"fmt"
	"time"
)

// KeyEvent is one key going down or up.
type KeyEvent struct {
	Key  Key
	Down bool
}

// Sender delivers key events to a guest. Type calls Keys once per burst (one
// keystroke: at most Shift down, key down, key up, Shift up); a Sender
// delivers a burst in order and returns when it has been handed to the
// hypervisor.
type Sender interface {
	Keys(ctx context.Context, events []KeyEvent) error
}

// DefaultKeyInterval is the pause between keystrokes when TypeOptions leaves
// KeyInterval zero: Packer's default boot_key_interval, safe on loaded hosts.
const DefaultKeyInterval = 100 * time.Millisecond

// TypeOptions tunes Type.
type TypeOptions struct {
	// KeyInterval is the pause between bursts (keystrokes). Zero means
	// DefaultKeyInterval; negative means no pause.
	KeyInterval time.Duration
	// Log, if set, receives progress lines. They never contain typed
	// characters, only counts, special key names and waits, because boot
	// commands carry passwords.
	Log func(string)
	// WaitSerial waits until text appears on the serial console (for
	// <waitSerial> actions); timeout 0 means the caller's default.
	WaitSerial func(ctx context.Context, text string, timeout time.Duration) error

	// sleep replaces the context-aware sleep in tests.
	sleep func(ctx context.Context, d time.Duration) error
}

// Type sends actions to s: each Press becomes key down and up, wrapped in
// Shift down/up for characters that need it on a US keyboard (unless a Shift
// is already held), Hold and Release send one side, Wait pauses. It stops
// with ctx.Err() when ctx is cancelled, also during waits. Every key is
// checked before the first one is sent, so an untypable key never leaves a
// half-typed command behind. Keys still held at the end stay held, as in
// Packer.
func Type(ctx context.Context, actions []Action, s Sender, o TypeOptions) error {
	for i, a := range actions {
		var k Key
		switch a := a.(type) {
		case Press:
			k = a.Key
		case Hold:
			k = a.Key
		case Release:
			k = a.Key
		case Wait:
			if a.D < 0 {
				return fmt.Errorf("boot command action %d: negative wait %s", i, a.D)
			}
			continue
		case WaitSerial:
			if o.WaitSerial == nil {
				return fmt.Errorf("boot command action %d: <waitSerial> needs a serial console", i)
			}
			continue
		default:
			return fmt.Errorf("boot command action %d: unknown action %T", i, a)
		}
		if _, _, err := QCode(k); err != nil {
			return fmt.Errorf("boot command action %d: %w", i, err)
		}
	}
	t := typer{s: s, o: o, held: map[Key]bool{}, autoShift: map[Key]bool{}}
	if t.o.KeyInterval == 0 {
		t.o.KeyInterval = DefaultKeyInterval
	}
	if t.o.sleep == nil {
		t.o.sleep = sleep
	}
	err := t.run(ctx, actions)
	t.flushChars()
	if err != nil {
		return err
	}
	t.log(fmt.Sprintf("boot command typed: %d keystrokes", t.keystrokes))
	return nil
}

type typer struct {
	s Sender
	o TypeOptions
	// held is what Hold pressed and Release has not let go yet.
	held map[Key]bool
	// autoShift marks held characters for which Type pressed Shift itself,
	// so their Release lets Shift go too.
	autoShift map[Key]bool
	// pendingChars counts characters typed since the last log line.
	pendingChars int
	keystrokes   int
}

func (t *typer) run(ctx context.Context, actions []Action) error {
	for _, a := range actions {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch a := a.(type) {
		case WaitSerial:
			t.flushChars()
			t.log("waiting for text on the serial console")
			if err := t.o.WaitSerial(ctx, a.Text, a.Timeout); err != nil {
				return fmt.Errorf("<waitSerial %q>: %w", a.Text, err)
			}
		case Wait:
			t.flushChars()
			t.log("waiting " + a.D.String())
			if err := t.o.sleep(ctx, a.D); err != nil {
				return err
			}
		case Press:
			shift := NeedsShift(a.Key) && !t.shiftDown()
			var ev []KeyEvent
			if shift {
				ev = append(ev, KeyEvent{ShiftKey, true})
			}
			ev = append(ev, KeyEvent{a.Key, true}, KeyEvent{a.Key, false})
			if shift {
				ev = append(ev, KeyEvent{ShiftKey, false})
			}
			if a.Key.IsSpecial() {
				t.flushChars()
				t.log("pressing " + a.Key.String())
			} else {
				t.pendingChars++
			}
			if err := t.burst(ctx, a.Key, ev); err != nil {
				return err
			}
		case Hold:
			var ev []KeyEvent
			if NeedsShift(a.Key) && !t.shiftDown() {
				ev = append(ev, KeyEvent{ShiftKey, true})
				t.autoShift[a.Key] = true
			}
			ev = append(ev, KeyEvent{a.Key, true})
			t.held[a.Key] = true
			t.flushChars()
			t.log("holding " + describe(a.Key))
			if err := t.burst(ctx, a.Key, ev); err != nil {
				return err
			}
		case Release:
			ev := []KeyEvent{{a.Key, false}}
			if t.autoShift[a.Key] {
				ev = append(ev, KeyEvent{ShiftKey, false})
				delete(t.autoShift, a.Key)
			}
			delete(t.held, a.Key)
			t.flushChars()
			t.log("releasing " + describe(a.Key))
			if err := t.burst(ctx, a.Key, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// shiftDown reports whether a Shift is already down, in which case wrapping
// a character in Shift down/up would release the user's Shift early.
func (t *typer) shiftDown() bool {
	return t.held[Key{Name: "leftShift"}] || t.held[Key{Name: "rightShift"}] || len(t.autoShift) > 0
}

// burst sends one keystroke's events, pausing KeyInterval before every
// burst but the first so the guest can drain its keyboard buffer (a PS/2
// controller queues only a few keystrokes).
func (t *typer) burst(ctx context.Context, k Key, ev []KeyEvent) error {
	if t.keystrokes > 0 && t.o.KeyInterval > 0 {
		if err := t.o.sleep(ctx, t.o.KeyInterval); err != nil {
			return err
		}
	}
	t.keystrokes++
	if err := t.s.Keys(ctx, ev); err != nil {
		return fmt.Errorf("typing boot command: keystroke %d (%s): %w", t.keystrokes, describe(k), err)
	}
	return nil
}

func (t *typer) flushChars() {
	switch {
	case t.pendingChars == 1:
		t.log("typed 1 character")
	case t.pendingChars > 1:
		t.log(fmt.Sprintf("typed %d characters", t.pendingChars))
	}
	t.pendingChars = 0
}

func (t *typer) log(msg string) {
	if t.o.Log != nil {
		t.o.Log(msg)
	}
}

// describe names a key for logs and errors without revealing characters.
func describe(k Key) string {
	if k.IsSpecial() {
		return k.String()
	}
	return "a character key"
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// QMPSender types through QMP input-send-event, which needs no VNC server
// (works with -display none). Each burst is one command carrying explicit
// down and up events as qcodes. It deliberately does not use send-key:
// send-key returns before its keys are delivered, so mixing it with other
// input interleaves characters in the guest.
type QMPSender struct {
	// Exec runs one QMP command; args is marshalled to the command's
	// "arguments", out is nil (the reply is empty). The QMP client's
	// Execute method fits.
	Exec func(ctx context.Context, cmd string, args any, out any) error
	// HoldTime, if positive, splits a burst at its first key-up: the
	// presses go in one command, the releases in a second one HoldTime
	// later, for guests that poll the keyboard and miss instant taps.
	HoldTime time.Duration
}

// qmpInputEvents is the "arguments" object of input-send-event.
type qmpInputEvents struct {
	Events []qmpInputEvent `json:"events"`
}

type qmpInputEvent struct {
	Type string      `json:"type"` // "key"
	Data qmpKeyEvent `json:"data"`
}

type qmpKeyEvent struct {
	Down bool        `json:"down"`
	Key  qmpKeyValue `json:"key"`
}

type qmpKeyValue struct {
	Type string `json:"type"` // "qcode"
	Data string `json:"data"`
}

// Keys implements Sender.
func (q *QMPSender) Keys(ctx context.Context, events []KeyEvent) error {
	all := make([]qmpInputEvent, len(events))
	split := len(events)
	for i, e := range events {
		code, _, err := QCode(e.Key)
		if err != nil {
			return err
		}
		all[i] = qmpInputEvent{Type: "key", Data: qmpKeyEvent{Down: e.Down, Key: qmpKeyValue{Type: "qcode", Data: code}}}
		if !e.Down && split == len(events) {
			split = i
		}
	}
	if q.HoldTime <= 0 || split == 0 || split == len(events) {
		return q.send(ctx, all)
	}
	if err := q.send(ctx, all[:split]); err != nil {
		return err
	}
	if err := sleep(ctx, q.HoldTime); err != nil {
		// Keys are down; release them anyway so the guest is not left
		// with a stuck Shift. The caller's context is done, so bound it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = q.send(rctx, all[split:])
		return err
	}
	return q.send(ctx, all[split:])
}

func (q *QMPSender) send(ctx context.Context, ev []qmpInputEvent) error {
	if err := q.Exec(ctx, "input-send-event", qmpInputEvents{Events: ev}, nil); err != nil {
		return fmt.Errorf("QMP input-send-event: %w", err)
	}
	return nil
}
