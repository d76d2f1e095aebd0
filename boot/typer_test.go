package boot

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is a Sender that keeps every burst.
type recorder struct {
	bursts [][]KeyEvent
	// onKeys, if set, runs after a burst is recorded; an error fails Keys.
	onKeys func(n int) error
}

func (r *recorder) Keys(ctx context.Context, ev []KeyEvent) error {
	r.bursts = append(r.bursts, append([]KeyEvent(nil), ev...))
	if r.onKeys != nil {
		return r.onKeys(len(r.bursts))
	}
	return nil
}

func (r *recorder) events() []KeyEvent {
	var all []KeyEvent
	for _, b := range r.bursts {
		all = append(all, b...)
	}
	return all
}

func down(k Key) KeyEvent { return KeyEvent{k, true} }
func up(k Key) KeyEvent   { return KeyEvent{k, false} }

var shift = Key{Name: "leftShift"}

// noSleep records requested sleeps instead of sleeping.
type noSleep struct{ slept []time.Duration }

func (n *noSleep) sleep(ctx context.Context, d time.Duration) error {
	n.slept = append(n.slept, d)
	return ctx.Err()
}

func mustParse(t *testing.T, s string) []Action {
	t.Helper()
	a, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTypeExpandsPresses(t *testing.T) {
	var r recorder
	var ns noSleep
	err := Type(context.Background(), mustParse(t, "aB_<enter>"), &r, TypeOptions{KeyInterval: -1, sleep: ns.sleep})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]KeyEvent{
		{down(Char('a')), up(Char('a'))},
		{down(shift), down(Char('B')), up(Char('B')), up(shift)},
		{down(shift), down(Char('_')), up(Char('_')), up(shift)},
		{down(sp("enter")), up(sp("enter"))},
	}
	if diff := cmp.Diff(want, r.bursts); diff != "" {
		t.Errorf("bursts mismatch (-want +got):\n%s", diff)
	}
	if len(ns.slept) != 0 {
		t.Errorf("slept %v with a negative KeyInterval", ns.slept)
	}
}

// TestTypeShiftWrapsExactlyShiftedChars types every printable character and
// checks Shift surrounds precisely the ones a US keyboard needs it for.
func TestTypeShiftWrapsExactlyShiftedChars(t *testing.T) {
	var all strings.Builder
	for r := rune(0x20); r <= 0x7E; r++ {
		if r != '<' { // '<' alone would be fine, but keep tokens out of the way
			all.WriteRune(r)
		}
	}
	all.WriteString("<<On><<Off>")
	var r recorder
	if err := Type(context.Background(), mustParse(t, all.String()), &r, TypeOptions{KeyInterval: -1}); err != nil {
		t.Fatal(err)
	}
	for _, b := range r.bursts[:len(r.bursts)-2] {
		k := b[len(b)/2].Key
		wrapped := len(b) == 4 && b[0] == down(shift) && b[3] == up(shift)
		if wrapped != strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZ~!@#$%^&*()_+{}|:\"<>?", k.Rune) {
			t.Errorf("%q: burst %v, shift-wrapped=%v", k.Rune, b, wrapped)
		}
		if !wrapped && (len(b) != 2 || b[0] != down(k) || b[1] != up(k)) {
			t.Errorf("%q: burst %v, want down/up", k.Rune, b)
		}
	}
	lt := Char('<')
	if diff := cmp.Diff([][]KeyEvent{{down(shift), down(lt)}, {up(lt), up(shift)}}, r.bursts[len(r.bursts)-2:]); diff != "" {
		t.Errorf("<<On><<Off> mismatch (-want +got):\n%s", diff)
	}
}

func TestTypeHoldRelease(t *testing.T) {
	tests := []struct {
		in   string
		want []KeyEvent
	}{
		{"<leftCtrlOn>c<leftCtrlOff>", []KeyEvent{
			down(sp("leftCtrl")), down(Char('c')), up(Char('c')), up(sp("leftCtrl"))}},
		// A held Shift is not pressed again nor released early by 'A'.
		{"<leftShiftOn>A1<leftShiftOff>", []KeyEvent{
			down(shift), down(Char('A')), up(Char('A')), down(Char('1')), up(Char('1')), up(shift)}},
		{"<rightShiftOn>?<rightShiftOff>", []KeyEvent{
			down(sp("rightShift")), down(Char('?')), up(Char('?')), up(sp("rightShift"))}},
		{"<AOn><AOff>", []KeyEvent{down(shift), down(Char('A')), up(Char('A')), up(shift)}},
		{"<aOn><aOff>", []KeyEvent{down(Char('a')), up(Char('a'))}},
		{"<leftAltOn><f2><leftAltOff>", []KeyEvent{
			down(sp("leftAlt")), down(sp("f2")), up(sp("f2")), up(sp("leftAlt"))}},
	}
	for _, tt := range tests {
		var r recorder
		if err := Type(context.Background(), mustParse(t, tt.in), &r, TypeOptions{KeyInterval: -1}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, r.events()); diff != "" {
			t.Errorf("%s: events mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestTypeWaitsAndIntervals(t *testing.T) {
	var r recorder
	var ns noSleep
	err := Type(context.Background(), mustParse(t, "ab<wait5>c<wait300ms>"), &r,
		TypeOptions{KeyInterval: 7 * time.Millisecond, sleep: ns.sleep})
	if err != nil {
		t.Fatal(err)
	}
	// Interval before every burst but the first; waits where written.
	want := []time.Duration{7 * time.Millisecond, 5 * time.Second, 7 * time.Millisecond, 300 * time.Millisecond}
	if diff := cmp.Diff(want, ns.slept); diff != "" {
		t.Errorf("sleeps mismatch (-want +got):\n%s", diff)
	}
}

func TestTypeDefaultKeyInterval(t *testing.T) {
	var ns noSleep
	if err := Type(context.Background(), mustParse(t, "ab"), &recorder{}, TypeOptions{sleep: ns.sleep}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{DefaultKeyInterval}, ns.slept); diff != "" {
		t.Errorf("sleeps mismatch (-want +got):\n%s", diff)
	}
}

func TestTypeRealWait(t *testing.T) {
	start := time.Now()
	if err := Type(context.Background(), mustParse(t, "a<wait30ms>b"), &recorder{}, TypeOptions{KeyInterval: -1}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("Type returned after %v, before the 30ms wait", el)
	}
}

func TestTypeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := recorder{onKeys: func(n int) error {
		if n == 3 {
			cancel()
		}
		return nil
	}}
	err := Type(ctx, mustParse(t, "abcdefgh"), &r, TypeOptions{KeyInterval: -1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Type error = %v, want context.Canceled", err)
	}
	if len(r.bursts) != 3 {
		t.Errorf("sent %d bursts after cancel at 3", len(r.bursts))
	}
}

func TestTypeCancelInterruptsWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := recorder{onKeys: func(int) error { cancel(); return nil }}
	start := time.Now()
	err := Type(ctx, mustParse(t, "a<wait1h>b"), &r, TypeOptions{KeyInterval: -1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Type error = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("cancel took %v", el)
	}
	if len(r.bursts) != 1 {
		t.Errorf("sent %d bursts, want 1", len(r.bursts))
	}
}

func TestTypeNeverLogsCharacters(t *testing.T) {
	var logs []string
	err := Type(context.Background(), mustParse(t, "root<tab>s3cr3t!<wait10ms><leftCtrlOn>x<leftCtrlOff><qOn><qOff><enter>"),
		&recorder{}, TypeOptions{KeyInterval: -1, Log: func(s string) { logs = append(logs, s) }})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"typed 4 characters", "pressing <tab>", "typed 7 characters", "waiting 10ms",
		"holding <leftCtrl>", "typed 1 character", "releasing <leftCtrl>",
		"holding a character key", "releasing a character key", "pressing <enter>",
		"boot command typed: 18 keystrokes",
	}
	if diff := cmp.Diff(want, logs); diff != "" {
		t.Errorf("logs mismatch (-want +got):\n%s", diff)
	}
}

func TestTypeRejectsUntypableBeforeSending(t *testing.T) {
	var r recorder
	acts := []Action{Press{Char('a')}, Press{Char('é')}}
	if err := Type(context.Background(), acts, &r, TypeOptions{KeyInterval: -1}); err == nil {
		t.Fatal("Type accepted é")
	}
	if len(r.bursts) != 0 {
		t.Errorf("sent %v before failing", r.bursts)
	}
	if err := Type(context.Background(), []Action{Wait{-time.Second}}, &r, TypeOptions{}); err == nil {
		t.Error("Type accepted a negative wait")
	}
}

func TestTypeSenderErrorHidesCharacter(t *testing.T) {
	r := recorder{onKeys: func(n int) error {
		if n == 2 {
			return errors.New("broken pipe")
		}
		return nil
	}}
	err := Type(context.Background(), mustParse(t, "pZ"), &r, TypeOptions{KeyInterval: -1})
	if err == nil || !strings.Contains(err.Error(), "keystroke 2 (a character key): broken pipe") || strings.Contains(err.Error(), "Z") {
		t.Errorf("Type error = %v", err)
	}
}

// qmpLog is a fake QMP Execute that records each command as JSON.
type qmpLog struct {
	cmds []string
	args []string
}

func (q *qmpLog) exec(ctx context.Context, cmd string, args, out any) error {
	if out != nil {
		return errors.New("input-send-event returns nothing; out must be nil")
	}
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	q.cmds = append(q.cmds, cmd)
	q.args = append(q.args, string(b))
	return nil
}

func qmpKey(down bool, code string) string {
	d := "false"
	if down {
		d = "true"
	}
	return `{"type":"key","data":{"down":` + d + `,"key":{"type":"qcode","data":"` + code + `"}}}`
}

func TestQMPSenderPayload(t *testing.T) {
	var q qmpLog
	s := &QMPSender{Exec: q.exec}
	if err := Type(context.Background(), mustParse(t, "A<enter>"), s, TypeOptions{KeyInterval: -1}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"events":[` + qmpKey(true, "shift") + `,` + qmpKey(true, "a") + `,` + qmpKey(false, "a") + `,` + qmpKey(false, "shift") + `]}`,
		`{"events":[` + qmpKey(true, "ret") + `,` + qmpKey(false, "ret") + `]}`,
	}
	if diff := cmp.Diff(want, q.args); diff != "" {
		t.Errorf("QMP args mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"input-send-event", "input-send-event"}, q.cmds); diff != "" {
		t.Errorf("QMP commands mismatch (-want +got):\n%s", diff)
	}
}

func TestQMPSenderHoldTimeSplitsBurst(t *testing.T) {
	var q qmpLog
	s := &QMPSender{Exec: q.exec, HoldTime: time.Millisecond}
	if err := Type(context.Background(), mustParse(t, "|<leftCtrlOn>"), s, TypeOptions{KeyInterval: -1}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"events":[` + qmpKey(true, "shift") + `,` + qmpKey(true, "backslash") + `]}`,
		`{"events":[` + qmpKey(false, "backslash") + `,` + qmpKey(false, "shift") + `]}`,
		`{"events":[` + qmpKey(true, "ctrl") + `]}`, // nothing to split
	}
	if diff := cmp.Diff(want, q.args); diff != "" {
		t.Errorf("QMP args mismatch (-want +got):\n%s", diff)
	}
}

func TestQMPSenderReleasesWhenCancelledDuringHold(t *testing.T) {
	var q qmpLog
	ctx, cancel := context.WithCancel(context.Background())
	s := &QMPSender{Exec: func(c context.Context, cmd string, args, out any) error {
		cancel() // cancelled right after the key-down command
		return q.exec(c, cmd, args, out)
	}, HoldTime: time.Hour}
	err := s.Keys(ctx, []KeyEvent{down(shift), down(Char('A')), up(Char('A')), up(shift)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Keys error = %v, want context.Canceled", err)
	}
	if len(q.args) != 2 || !strings.Contains(q.args[1], `"down":false`) {
		t.Errorf("QMP args = %v, want the releases sent after cancel", q.args)
	}
}

func TestQMPSenderExecError(t *testing.T) {
	s := &QMPSender{Exec: func(context.Context, string, any, any) error { return errors.New("QEMU gone") }}
	err := s.Keys(context.Background(), []KeyEvent{down(sp("esc")), up(sp("esc"))})
	if err == nil || !strings.Contains(err.Error(), "input-send-event: QEMU gone") {
		t.Errorf("Keys error = %v", err)
	}
}
