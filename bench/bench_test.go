package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A debug log as kiln writes it, trimmed; the qmp line carries a second
// msg attribute that mentions a step and must not be taken for one.
const debugLog = `time=2026-11-22T05:33:05.520Z level=INFO msg="Build log and serial console: /tmp/x" build=qemu.example
time=2026-11-22T05:33:05.592Z level=DEBUG msg=step build=qemu.example step=qemu.start event=started duration=0s err=<nil>
time=2026-11-22T05:33:05.688Z level=DEBUG msg="qmp ->" build=qemu.example msg="msg=step step=ssh.connect event=finished duration=9h"
time=2026-11-22T05:33:05.691Z level=DEBUG msg=step build=qemu.example step=qemu.start event=finished duration=98.922741ms err=<nil>
time=2026-11-22T05:33:15.992Z level=DEBUG msg=step build=qemu.example step=ssh.connect event=finished duration=10.300611365s err=<nil>
time=2026-11-22T05:33:16.328Z level=DEBUG msg=step build=qemu.example step=provision event=finished duration=335.909055ms err=<nil>
time=2026-11-22T05:33:18.981Z level=DEBUG msg=step build=qemu.example step=shutdown event=finished duration=2.653501782s err=<nil>
time=2026-11-22T05:33:19.066Z level=DEBUG msg=step build=qemu.example step=output.check event=finished duration=11.597µs err=<nil>
time=2026-11-22T05:33:19.067Z level=DEBUG msg=step build=qemu.example step=qemu.start event=undone duration=37.976µs err=<nil>
`

func TestParseStepLog(t *testing.T) {
	steps, err := parseStepLog(strings.NewReader(debugLog))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]stepRecord{
		"qemu.start":   {At: time.Date(2026, 11, 22, 5, 33, 5, 691e6, time.UTC), Duration: 98922741 * time.Nanosecond},
		"ssh.connect":  {At: time.Date(2026, 11, 22, 5, 33, 15, 992e6, time.UTC), Duration: 10300611365 * time.Nanosecond},
		"provision":    {At: time.Date(2026, 11, 22, 5, 33, 16, 328e6, time.UTC), Duration: 335909055 * time.Nanosecond},
		"shutdown":     {At: time.Date(2026, 11, 22, 5, 33, 18, 981e6, time.UTC), Duration: 2653501782 * time.Nanosecond},
		"output.check": {At: time.Date(2026, 11, 22, 5, 33, 19, 66e6, time.UTC), Duration: 11597 * time.Nanosecond},
	}
	if len(steps) != len(want) {
		t.Errorf("got %d steps %v, want %d", len(steps), steps, len(want))
	}
	for name, w := range want {
		got, ok := steps[name]
		if !ok || !got.At.Equal(w.At) || got.Duration != w.Duration {
			t.Errorf("%s = %+v (found %v), want %+v", name, got, ok, w)
		}
	}
}

func TestParseStepLogBadDuration(t *testing.T) {
	_, err := parseStepLog(strings.NewReader("time=2026-11-22T05:33:05.520Z level=DEBUG msg=step step=provision event=finished duration=soon\n"))
	if err == nil || !strings.Contains(err.Error(), "provision") {
		t.Errorf("err = %v, want a bad-duration error naming the step", err)
	}
}

func TestParseLogfmt(t *testing.T) {
	kv := parseLogfmt(`time=T msg="a \"quoted\" b=c" k=v msg=second empty= last=x`)
	for k, want := range map[string]string{"time": "T", "msg": `a "quoted" b=c`, "k": "v", "empty": "", "last": "x"} {
		if kv[k] != want {
			t.Errorf("%s = %q, want %q (all: %q)", k, kv[k], want, kv)
		}
	}
	if _, ok := kv["b"]; ok {
		t.Errorf("a key was read from inside a quoted value: %q", kv)
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tkiln\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1271456 kB\nVmHWM:\t   17712 kB\nVmRSS:\t   16020 kB\n"
	name, hwm := parseStatus([]byte(status))
	if name != "kiln" || hwm != 17712 {
		t.Errorf("parseStatus = %q, %d; want kiln, 17712", name, hwm)
	}
	// A zombie's status has no memory lines.
	if _, hwm := parseStatus([]byte("Name:\tkiln\nState:\tZ (zombie)\n")); hwm != 0 {
		t.Errorf("zombie VmHWM = %d, want 0", hwm)
	}
}

func TestPollHWM(t *testing.T) {
	self, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	name, _ := parseStatus(self)
	stop := make(chan struct{})
	close(stop) // one reading, then return
	if got := pollHWM(os.Getpid(), name, stop); got <= 0 {
		t.Errorf("pollHWM(self) = %d, want our VmHWM", got)
	}
	if got := pollHWM(os.Getpid(), "not-"+name, stop); got != 0 {
		t.Errorf("pollHWM with another name = %d, want 0: a reused pid must not count", got)
	}
}

func TestStatOf(t *testing.T) {
	s := time.Second
	if got := statOf([]time.Duration{5 * s, 1 * s, 3 * s}); got != (stat{Median: 3 * s, Min: 1 * s, Max: 5 * s}) {
		t.Errorf("odd: %+v", got)
	}
	if got := statOf([]time.Duration{4 * s, 1 * s, 2 * s, 10 * s}); got != (stat{Median: 3 * s, Min: 1 * s, Max: 10 * s}) {
		t.Errorf("even: %+v", got)
	}
	in := []time.Duration{2, 1}
	statOf(in)
	if in[0] != 2 {
		t.Error("statOf sorted its argument")
	}
}

func TestSummarize(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	builds := []buildSample{
		{Total: 14 * s, StartToQEMU: 200 * ms, QEMUToSSH: 10 * s, Provision: 400 * ms, Shutdown: 2600 * ms, Convert: 100 * ms, PeakRSSKiB: 18000, RusageKiB: 300000},
		{Total: 13 * s, StartToQEMU: 200 * ms, QEMUToSSH: 9 * s, Provision: 300 * ms, Shutdown: 2700 * ms, Convert: 100 * ms, PeakRSSKiB: 70000, RusageKiB: 290000},
		{Total: 15 * s, StartToQEMU: 300 * ms, QEMUToSSH: 11 * s, Provision: 500 * ms, Shutdown: 2500 * ms, Convert: 200 * ms, PeakRSSKiB: 17000, RusageKiB: 310000},
	}
	guests := []guestSample{
		{Boot: 6 * s, Login: 700 * ms, Poweroff: 2100 * ms},
		{Boot: 5 * s, Login: 800 * ms, Poweroff: 2200 * ms},
		{Boot: 7 * s, Login: 900 * ms, Poweroff: 2000 * ms},
	}
	sum := summarize(builds, guests)
	// Guest medians: boot 6 s, login 0.8 s, poweroff 2.1 s = 8.9 s.
	// Overheads: 14-8.9-0.5 = 4.6, 13-8.9-0.4 = 3.7, 15-8.9-0.7 = 5.4.
	if want := (stat{Median: 4600 * ms, Min: 3700 * ms, Max: 5400 * ms}); sum.Overhead != want {
		t.Errorf("overhead = %+v, want %+v", sum.Overhead, want)
	}
	// SSH: 10-6.8, 9-6.8, 11-6.8.
	if want := (stat{Median: 3200 * ms, Min: 2200 * ms, Max: 4200 * ms}); sum.SSHLatency != want {
		t.Errorf("SSH latency = %+v, want %+v", sum.SSHLatency, want)
	}
	if want := (stat{Median: 500 * ms, Min: 400 * ms, Max: 600 * ms}); sum.ShutdownLatency != want {
		t.Errorf("shutdown latency = %+v, want %+v", sum.ShutdownLatency, want)
	}
	if want := (kibStat{Median: 18000, Min: 17000, Max: 70000}); sum.PeakRSS != want {
		t.Errorf("peak RSS = %+v, want %+v", sum.PeakRSS, want)
	}
	// Other: 14-13.3, 13-12.3, 15-14.5.
	if want := (stat{Median: 700 * ms, Min: 500 * ms, Max: 700 * ms}); sum.Other != want {
		t.Errorf("other = %+v, want %+v", sum.Other, want)
	}

	var out bytes.Buffer
	writeReport(&out, sum)
	// Compare with runs of spaces collapsed: the table's widths may change.
	report := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"overhead 4.60 s 3.70 s 5.40 s",
		"total 14.00 s 13.00 s 15.00 s",
		"overhead: median 4.60 s, max 5.40 s (target <= 2.00 s): over target",
		"max 71.7 MB (target <= 60.0 MB): over target",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReportWithinTargets(t *testing.T) {
	s := time.Second
	sum := summarize(
		[]buildSample{{Total: 10 * s, QEMUToSSH: 7 * s, Provision: s, Shutdown: s, PeakRSSKiB: 20000}},
		[]guestSample{{Boot: 6 * s, Login: s / 2, Poweroff: s}})
	var out bytes.Buffer
	writeReport(&out, sum)
	if got := out.String(); !strings.Contains(got, "overhead: median 1.50 s, max 1.50 s (target <= 2.00 s): OK") ||
		!strings.Contains(got, "max 20.5 MB (target <= 60.0 MB): OK") {
		t.Errorf("report:\n%s", got)
	}
}

func TestMarkerWriter(t *testing.T) {
	w := newMarkerWriter(readyMarker)
	w.Write([]byte("[ 1.0] booting\nkiln-guest: sshd"))
	select {
	case <-w.Found():
		t.Fatal("found before the line was complete")
	default:
	}
	before := time.Now()
	w.Write([]byte(" ready\n[ 5.0] more\n"))
	select {
	case at := <-w.Found():
		if at.Before(before) {
			t.Errorf("found at %v, before the line ended (%v)", at, before)
		}
	default:
		t.Fatal("marker split across writes not found")
	}
	// Later output, even another marker, neither blocks nor signals again.
	w.Write([]byte(readyMarker + "\n" + strings.Repeat("x", 2*tailSize)))
	select {
	case <-w.Found():
		t.Error("found twice")
	default:
	}
	if tail := w.Tail(); len(tail) != tailSize || strings.Trim(tail, "x") != "" {
		t.Errorf("tail is %d bytes, want the last %d", len(tail), tailSize)
	}
}

func TestGuestWithSums(t *testing.T) {
	src := t.TempDir()
	disk := []byte("not really a qcow2")
	if err := os.WriteFile(filepath.Join(src, "guest.qcow2"), disk, 0o644); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(t.TempDir(), "guest")
	dir, err := guestWithSums(src, copyDir)
	if err != nil {
		t.Fatal(err)
	}
	if dir != copyDir {
		t.Fatalf("dir = %s, want the copy %s", dir, copyDir)
	}
	sum := sha256.Sum256(disk)
	if b, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS")); string(b) != hex.EncodeToString(sum[:])+"  guest.qcow2\n" {
		t.Errorf("SHA256SUMS = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "guest.qcow2")); !bytes.Equal(b, disk) {
		t.Errorf("copied disk = %q", b)
	}
	if _, err := os.Stat(filepath.Join(src, "SHA256SUMS")); err == nil {
		t.Error("wrote into the fixture cache")
	}

	// With SHA256SUMS already there, the directory is used as it is.
	if dir, err := guestWithSums(copyDir, filepath.Join(t.TempDir(), "unused")); err != nil || dir != copyDir {
		t.Errorf("guestWithSums = %s, %v; want %s", dir, err, copyDir)
	}
}

func TestTypingErrors(t *testing.T) {
	text := `Kiln_Types:Fast! ^5 &6`
	sum := sha256.Sum256([]byte(text))
	sumLine := "kiln-installer: typed-sum: 22 " + hex.EncodeToString(sum[:]) + "\r\n"
	doubled := "kiln-installer: typed: Kiln_Types:Fast! ^55 &6\r\n"
	for _, c := range []struct {
		name, serial string
		want         int
	}{
		// The guest holds the right line; only the echo shows the UART's doubled byte.
		{"sum matches, echo doubled", doubled + sumLine, 0},
		{"no sum, echo doubled", doubled, 1},
		{"sum of another line", doubled + "kiln-installer: typed-sum: 23 00\r\n", 1},
		{"nothing typed", "kiln-installer: keys: ready\r\n", len(text)},
	} {
		if got := typingErrors(c.serial, text); got != c.want {
			t.Errorf("%s: typingErrors = %d, want %d", c.name, got, c.want)
		}
	}
}
