package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSerial is QEMU's side of the serial chardev socket; the test writes
// to the returned connection as the guest would.
func fakeSerial(t *testing.T) (*Console, net.Conn) {
	t.Helper()
	return fakeSerialLog(t, "")
}

// fakeSerialLog is fakeSerial with the console's transcript in logPath.
func fakeSerialLog(t *testing.T, logPath string) (*Console, net.Conn) {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "serial.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	con, err := DialSerial(ctx, path, logPath)
	if err != nil {
		t.Fatal(err)
	}
	guest := <-accepted
	if guest == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		guest.Close()
		con.Close()
	})
	return con, guest
}

func TestConsoleMatchesAcrossReads(t *testing.T) {
	con, guest := fakeSerial(t)
	errc := make(chan error, 1)
	go func() { errc <- con.WaitFor(ctxT(t, 5*time.Second), "login: ") }()
	for _, chunk := range []string{"Debian GNU/Linux 12 vm ttyS0\r\n\r\nvm lo", "g", "in", ": "} {
		guest.Write([]byte(chunk))
		select {
		case err := <-errc:
			if chunk != ": " {
				t.Fatalf("WaitFor returned after %q: %v", chunk, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(20 * time.Millisecond):
			// Give the console time to (wrongly) match a partial prefix.
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestConsoleHistoryWindow(t *testing.T) {
	con, guest := fakeSerial(t)
	guest.Write([]byte("early marker\n"))
	// Text printed before the call counts while it is in the window.
	if err := con.WaitFor(ctxT(t, 5*time.Second), "early marker"); err != nil {
		t.Fatal(err)
	}
	// Push it out of the 64 KiB window, then end with a sync marker.
	guest.Write([]byte(strings.Repeat("x", serialHistory) + "sync"))
	if err := con.WaitFor(ctxT(t, 5*time.Second), "sync"); err != nil {
		t.Fatal(err)
	}
	err := con.WaitFor(ctxT(t, 100*time.Millisecond), "early marker")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor for text older than the window = %v, want deadline exceeded", err)
	}
}

func TestConsoleLinesAndClose(t *testing.T) {
	con, guest := fakeSerial(t)
	got := make(chan string, 10)
	con.Lines(func(l string) { got <- l })
	guest.Write([]byte("one\r\ntw"))
	guest.Write([]byte("o\nthree-without-newline"))
	guest.Close() // QEMU exits: the partial last line is flushed
	var lines []string
	for l := range 3 {
		select {
		case s := <-got:
			lines = append(lines, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d lines: %q", l, lines)
		}
	}
	if strings.Join(lines, "|") != "one|two|three-without-newline" {
		t.Errorf("lines = %q", lines)
	}
	select {
	case <-con.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	if err := con.WaitFor(ctxT(t, 5*time.Second), "four"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("WaitFor after close = %v", err)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestConsoleLogIsExact: the transcript holds every byte the guest sent,
// once and in order, also when the guest writes one byte at a time (as
// QEMU's 16550 does) faster than the reader keeps up.
func TestConsoleLogIsExact(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "serial.log")
	con, guest := fakeSerialLog(t, logPath)
	var want strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&want, "line %04d: %s\r\n", i, strings.Repeat("ab", i%40))
	}
	for _, b := range []byte(want.String()) {
		if _, err := guest.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	guest.Close()
	<-con.Done()
	con.Close()
	got, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("the log has %d bytes, want %d (first difference at %d)", len(got), want.Len(), firstDiff(string(got), want.String()))
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
