package qemu

import (
	"context"
	"errors"
	"fmt"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
	"github.com/kilnbuild/kiln/internal/testutil"
)

// serialFirmware is a 64 KiB BIOS image that prints msg on COM1 (port
// 0x3f8) and halts: a guest that talks on the serial console without a
// disk, kernel or real firmware.
func serialFirmware(msg string) []byte {
	img := make([]byte, 64<<10)
	code := []byte{
		0xBE, 18, 0x00, // mov si, msg (offset 18)
		0xBA, 0xF8, 0x03, // mov dx, 0x3f8
		0x2E, 0xAC, // next: lodsb (from cs:si)
		0x84, 0xC0, // test al, al
		0x74, 0x03, // jz done
		0xEE,       // out dx, al
		0xEB, 0xF7, // jmp next
		0xF4,       // done: hlt
		0xEB, 0xFD, // jmp done
	}
	code = append(code, msg...)
	code = append(code, 0)
	copy(img, code)
	img[0xFFF0] = 0xE9 // reset vector: jmp near 0
	img[0xFFF1], img[0xFFF2] = 0x0D, 0x00
	return img
}

// twoPorts returns a port held by a listener and the port after it, which
// was free a moment ago.
func twoPorts(t *testing.T) (taken, free int) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		probe, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err != nil {
			ln.Close()
			continue
		}
		probe.Close()
		t.Cleanup(func() { ln.Close() })
		return p, p + 1
	}
	t.Fatal("no two adjacent ports")
	return 0, 0
}

func TestIntegrationBuildVM(t *testing.T) {
	bin := testutil.Tool(t, "qemu-system-x86_64")
	dir := shortTempDir(t)
	makeFile(t, filepath.Join(dir, "disk.qcow2"))
	fw := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(fw, serialFirmware("kiln serial hello\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := base(dir)
	s.Binary = bin
	s.Firmware = fw
	s.Drives = []Drive{disk(dir, "virtio")}
	s.VNC = "127.0.0.1:0,to=99"
	argv, err := Args(s)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	stderr := &testutil.Buffer{}
	p, err := Start(ctx, argv, StartOptions{Stderr: stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Kill()
		<-p.Done()
	}()
	c, err := qmp.Dial(ctx, s.QMPSocket, qmp.Options{})
	if err != nil {
		t.Fatalf("QMP: %v (qemu: %v; stderr %q)", err, p.ExitError(), stderr.String())
	}
	defer c.Close()
	t.Logf("QEMU start to QMP connected: %v", time.Since(start))
	serialLog := filepath.Join(t.TempDir(), "serial.log")
	con, err := DialSerial(ctx, s.SerialSocket, serialLog)
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()
	var mu sync.Mutex
	var lines []string
	con.Lines(func(l string) {
		mu.Lock()
		lines = append(lines, l)
		mu.Unlock()
	})

	// Host port forwarding while paused: one port of the range is taken
	// by someone else, so the other must be chosen.
	taken, free := twoPorts(t)
	got, err := ForwardHostPort(ctx, c, NetdevID, "127.0.0.1", taken, free, 22)
	if err != nil {
		t.Fatalf("ForwardHostPort: %v", err)
	}
	if got != free {
		t.Fatalf("ForwardHostPort chose %d, want %d (%d is taken)", got, free, taken)
	}
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", got), 5*time.Second)
	if err != nil {
		t.Fatalf("connecting to the forwarded port: %v", err)
	}
	conn.Close()
	// Now both are taken: a clean error, not a hang or a bogus port.
	if p2, err := ForwardHostPort(ctx, c, NetdevID, "127.0.0.1", taken, free, 22); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("ForwardHostPort with no free port = %d, %v", p2, err)
	}
	if _, err := ForwardHostPort(ctx, c, "nosuch", "127.0.0.1", free+1, free+1, 22); err == nil || !strings.Contains(err.Error(), "unrecognized netdev") {
		t.Errorf("ForwardHostPort on a missing netdev = %v", err)
	}

	events, unsub := c.Subscribe(16)
	defer unsub()
	if err := c.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := qmp.WaitFor(ctx, events, "RESUME"); err != nil {
		t.Fatal(err)
	}
	if err := con.WaitFor(ctx, "serial hello"); err != nil {
		t.Fatal(err)
	}

	var vnc struct {
		Enabled bool
		Service string
	}
	if err := c.Execute(ctx, "query-vnc", nil, &vnc); err != nil || !vnc.Enabled || vnc.Service == "" {
		t.Errorf("query-vnc = %+v, %v", vnc, err)
	}

	shot := filepath.Join(dir, "screen.png")
	if err := Screendump(ctx, c, shot); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("screendump is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
		t.Errorf("screendump is %v", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".screendump-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	if err := c.Execute(ctx, "quit", nil, nil); err != nil && !errors.Is(err, qmp.ErrClosed) {
		t.Fatal(err)
	}
	if _, err := qmp.WaitFor(ctx, events, "SHUTDOWN"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("QEMU still running 10s after quit")
	}
	if err := p.ExitError(); err != nil {
		t.Errorf("ExitError after quit = %v", err)
	}
	<-con.Done()
	if err := con.WaitFor(ctx, "never printed"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("WaitFor after QEMU exit = %v, want closed", err)
	}
	con.Close() // waits for the Lines goroutine
	mu.Lock()
	if len(lines) != 1 || lines[0] != "kiln serial hello" {
		t.Errorf("Lines saw %q", lines)
	}
	mu.Unlock()
	log, err := os.ReadFile(serialLog)
	if err != nil || !strings.Contains(string(log), "kiln serial hello") {
		t.Errorf("the console's log: %q, %v", log, err)
	}
}
