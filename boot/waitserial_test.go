package boot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseWaitSerial(t *testing.T) {
	got := mustParse(t, `<waitSerial "boot: ">x<waitSerial "login:" 2m><enter>`)
	want := []Action{
		WaitSerial{Text: "boot: "},
		Press{Key: Char('x')},
		WaitSerial{Text: "login:", Timeout: 2 * time.Minute},
		Press{Key: Key{Name: "enter"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	for _, bad := range []string{`<waitSerial boot>`, `<waitSerial "boot`, `<waitSerial "x" soon>`, `<waitSerial "">`} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestTypeWaitsForSerialTextBeforeTheNextKeys(t *testing.T) {
	rec := &recorder{}
	var order []string
	rec.onKeys = func(int) error { order = append(order, "keys"); return nil }
	o := TypeOptions{KeyInterval: -1, WaitSerial: func(ctx context.Context, text string, timeout time.Duration) error {
		order = append(order, "wait:"+text+":"+timeout.String())
		return nil
	}}
	if err := Type(context.Background(), mustParse(t, `a<waitSerial "ready" 3s>b`), rec, o); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "keys,wait:ready:3s,keys" {
		t.Fatalf("order = %s", got)
	}
	o.WaitSerial = func(context.Context, string, time.Duration) error { return errors.New("timed out") }
	err := Type(context.Background(), mustParse(t, `<waitSerial "ready">b`), &recorder{}, o)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want the wait's error, got %v", err)
	}
	o.WaitSerial = nil
	if err := Type(context.Background(), mustParse(t, `<waitSerial "ready">`), &recorder{}, o); err == nil {
		t.Fatal("waitSerial without a console accepted")
	}
}
