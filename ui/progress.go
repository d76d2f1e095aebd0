package ui

import (
	"fmt"
	"sync"
	"time"
)

// throttle decides which progress updates are printed: on a terminal at
// most twice a second, elsewhere (CI logs) once per 10% so logs stay short.
type throttle struct {
	mu     sync.Mutex
	tty    bool
	last   time.Time
	decile int
}

// ok reports whether to print an update at fraction frac (negative when the
// total is unknown).
func (t *throttle) ok(frac float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	switch {
	case frac < 0:
		if now.Sub(t.last) < 2*time.Second {
			return false
		}
	case frac >= 1:
		if t.decile == 10 {
			return false
		}
		t.decile = 10
	case t.tty:
		if now.Sub(t.last) < 500*time.Millisecond {
			return false
		}
	default:
		d := int(frac * 10)
		if d <= t.decile {
			return false
		}
		t.decile = d
	}
	t.last = now
	return true
}

// Progress returns a callback reporting done/total bytes of a transfer
// (total <= 0: unknown).
func (b *Build) Progress(label string) func(done, total int64) {
	t := &throttle{tty: b.out.TTY, decile: -1}
	start := time.Now()
	return func(done, total int64) {
		frac := -1.0
		if total > 0 {
			frac = float64(done) / float64(total)
		}
		if !t.ok(frac) {
			return
		}
		if b.out.Format == JSON {
			b.out.Event(Event{Build: b.name, Type: EventProgress, Label: label, Done: done, Total: total, Pct: frac * 100})
			return
		}
		rate := ""
		if s := time.Since(start).Seconds(); s > 0.2 {
			rate = fmt.Sprintf(", %s/s", Bytes(int64(float64(done)/s)))
		}
		if total <= 0 {
			b.Message("%s: %s%s", label, Bytes(done), rate)
			return
		}
		b.Message("%s: %3.0f%% (%s of %s%s)", label, frac*100, Bytes(done), Bytes(total), rate)
	}
}

// Percent is Progress for tools that report only a percentage (qemu-img -p).
func (b *Build) Percent(label string) func(pct float64) {
	t := &throttle{tty: b.out.TTY, decile: -1}
	return func(pct float64) {
		if !t.ok(pct / 100) {
			return
		}
		if b.out.Format == JSON {
			b.out.Event(Event{Build: b.name, Type: EventProgress, Label: label, Done: -1, Total: -1, Pct: pct})
			return
		}
		b.Message("%s: %3.0f%%", label, pct)
	}
}

// Bytes formats a size for people: 1.5 GiB, 18.0 MiB, 512 B.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
