package libvirt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	pngenc "image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// fakeDaemon answers libvirt RPC calls on a unix socket the way libvirtd
// 9.0 does for the calls wireConn makes; screenshot decides what a
// screenshot call gets back.
type fakeDaemon struct {
	t          *testing.T
	sock       string
	auth       []uint32
	screenshot func(c net.Conn, serial uint32)
	console    func(c net.Conn, serial uint32)
	calls      chan uint32 // procedures, in order
	openedURI  chan string
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	f := &fakeDaemon{t: t, sock: filepath.Join(t.TempDir(), "libvirt-sock"), calls: make(chan uint32, 100), openedURI: make(chan string, 1)}
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeDaemon) uri() string { return "qemu+unix:///system?socket=" + f.sock }

func writePacket(c net.Conn, proc, typ, serial, status uint32, payload []byte) {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+headerLen+len(payload)))
	for _, v := range []uint32{wireProgram, wireVersion, proc, typ, serial, status} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	c.Write(append(b, payload...))
}

func errorPayload(code uint32, msg string) []byte {
	var e xdrEncoder
	e.uint32(code)
	e.uint32(10) // VIR_FROM_QEMU
	e.optString(msg)
	e.uint32(2)   // level
	e.uint32(0)   // no domain
	for range 3 { // str1..str3
		e.uint32(0)
	}
	e.uint32(0)
	e.uint32(0)
	e.uint32(0) // no network
	return e.b
}

func (f *fakeDaemon) serve(c net.Conn) {
	defer c.Close()
	w := &wireConn{conn: c, r: bufio.NewReader(c)}
	for {
		h, payload, err := w.read()
		if err != nil {
			return
		}
		select {
		case f.calls <- h.Procedure:
		default:
		}
		switch h.Procedure {
		case procAuthList:
			var e xdrEncoder
			e.uint32(uint32(len(f.auth)))
			for _, a := range f.auth {
				e.uint32(a)
			}
			writePacket(c, h.Procedure, packetReply, h.Serial, statusOK, e.b)
		case procConnectOpen:
			d := xdrDecoder{b: payload}
			select {
			case f.openedURI <- d.optString():
			default: // the test reads the first only
			}
			writePacket(c, h.Procedure, packetReply, h.Serial, statusOK, nil)
		case procDomainScreenshot:
			d := xdrDecoder{b: payload}
			if name := d.str(); name != "kiln-x" {
				f.t.Errorf("screenshot of domain %q", name)
			}
			f.screenshot(c, h.Serial)
		case procDomainOpenConsole:
			f.console(c, h.Serial)
		case procConnectClose:
			writePacket(c, h.Procedure, packetReply, h.Serial, statusOK, nil)
			return
		default:
			writePacket(c, h.Procedure, packetReply, h.Serial, statusOK, nil)
		}
	}
}

func mimeReply(mime string) []byte {
	var e xdrEncoder
	e.optString(mime)
	return e.b
}

func testDomain() *Domain {
	return &Domain{Name: "kiln-x", dom: golibvirt.Domain{Name: "kiln-x", ID: 7}}
}

// TestWireScreenshot: the image arrives whole whether libvirtd sends the
// call's reply before the stream or after it (9.0 does both), and
// whatever end-of-stream markers follow; the connection is closed
// politely.
func TestWireScreenshot(t *testing.T) {
	var buf bytes.Buffer
	if err := pngenc.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 48))); err != nil {
		t.Fatal(err)
	}
	img := buf.Bytes()
	stream := func(c net.Conn, serial uint32) {
		for chunk := range slices.Chunk(img, 100) {
			writePacket(c, procDomainScreenshot, packetStream, serial, statusContinue, chunk)
		}
		writePacket(c, procDomainScreenshot, packetStream, serial, statusContinue, nil)
	}
	reply := func(c net.Conn, serial uint32) {
		writePacket(c, procDomainScreenshot, packetReply, serial, statusOK, mimeReply("image/png"))
	}
	for _, tc := range []struct {
		name string
		auth []uint32
		send func(c net.Conn, serial uint32)
		want []uint32
	}{
		{"reply first", nil, func(c net.Conn, serial uint32) {
			reply(c, serial)
			stream(c, serial)
			// Newer daemons also end with an empty "ok".
			writePacket(c, procDomainScreenshot, packetStream, serial, statusOK, nil)
		}, []uint32{procAuthList, procConnectOpen, procDomainScreenshot, procConnectClose}},
		{"stream first", []uint32{authPolkit}, func(c net.Conn, serial uint32) {
			stream(c, serial)
			reply(c, serial)
		}, []uint32{procAuthList, procAuthPolkit, procConnectOpen, procDomainScreenshot, procConnectClose}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.auth, f.screenshot = tc.auth, tc.send
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d := testDomain()
			d.c = &Conn{URI: f.uri()}
			out := filepath.Join(t.TempDir(), "screen.png")
			if err := d.Screenshot(ctx, out); err != nil {
				t.Fatal(err)
			}
			assertFileEquals(t, out, img)
			if u := <-f.openedURI; u != "qemu:///system" {
				t.Errorf("opened %q, want qemu:///system", u)
			}
			var procs []uint32
			for len(procs) < len(tc.want) {
				select {
				case p := <-f.calls:
					procs = append(procs, p)
				case <-ctx.Done():
					t.Fatalf("calls so far %v", procs)
				}
			}
			if !slices.Equal(procs, tc.want) {
				t.Errorf("calls %v, want %v", procs, tc.want)
			}
		})
	}
}

// TestWireScreenshotErrors: the daemon's errors come back as go-libvirt
// Errors with their message; a daemon that stops answering is cut off by
// the context, promptly.
func TestWireScreenshotErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(c net.Conn, serial uint32)
		want string
	}{
		{"call refused", func(c net.Conn, serial uint32) {
			writePacket(c, procDomainScreenshot, packetReply, serial, statusError, errorPayload(55, "Requested operation is not valid: domain is not running"))
		}, "domain is not running"},
		{"stream error", func(c net.Conn, serial uint32) {
			writePacket(c, procDomainScreenshot, packetReply, serial, statusOK, mimeReply("image/png"))
			writePacket(c, procDomainScreenshot, packetStream, serial, statusContinue, []byte("\x89PNG"))
			writePacket(c, procDomainScreenshot, packetStream, serial, statusError, errorPayload(1, "internal error: unable to read screenshot"))
		}, "unable to read screenshot"},
		{"truncated image", func(c net.Conn, serial uint32) {
			writePacket(c, procDomainScreenshot, packetReply, serial, statusOK, mimeReply("image/png"))
			writePacket(c, procDomainScreenshot, packetStream, serial, statusContinue, []byte("\x89PNG\r\n\x1a\nxx"))
			writePacket(c, procDomainScreenshot, packetStream, serial, statusOK, nil)
		}, "checking the image/png image"},
		{"no answer", func(c net.Conn, serial uint32) {}, "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.screenshot = tc.send
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			d := testDomain()
			d.c = &Conn{URI: f.uri()}
			out := filepath.Join(t.TempDir(), "screen.png")
			start := time.Now()
			err := d.Screenshot(ctx, out)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "kiln-x") {
				t.Fatalf("got %v, want an error naming the domain and %q", err, tc.want)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %s", took)
			}
			var lerr golibvirt.Error
			if daemon := tc.name == "call refused" || tc.name == "stream error"; daemon != errors.As(err, &lerr) {
				t.Errorf("errors.As(golibvirt.Error) = %v for %v", !daemon, err)
			}
			if m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(m) != 0 {
				t.Errorf("files left: %v", m)
			}
		})
	}
}

func assertFileEquals(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes, want the %d sent", path, len(got), len(want))
	}
}

// TestWireConsole: Console returns once libvirt set the console up, the
// output written before and after that arrives in order, and the stream
// ends when the daemon ends it, or when ctx does.
func TestWireConsole(t *testing.T) {
	f := newFakeDaemon(t)
	release := make(chan struct{})
	f.console = func(c net.Conn, serial uint32) {
		writePacket(c, procDomainOpenConsole, packetStream, serial, statusContinue, []byte("SeaBIOS\n"))
		writePacket(c, procDomainOpenConsole, packetReply, serial, statusOK, nil)
		<-release
		writePacket(c, procDomainOpenConsole, packetStream, serial, statusContinue, []byte("login: "))
		writePacket(c, procDomainOpenConsole, packetStream, serial, statusOK, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := testDomain()
	d.c = &Conn{URI: f.uri()}
	var out testutil.Buffer
	ended, err := d.Console(ctx, &out)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		t.Fatalf("console ended before the domain did: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "SeaBIOS\nlogin: " {
		t.Errorf("console gave %q", got)
	}

	// A console that never ends is ended by its context.
	f.console = func(c net.Conn, serial uint32) {
		writePacket(c, procDomainOpenConsole, packetReply, serial, statusOK, nil)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ended, err = d.Console(cctx, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ccancel()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("console ended with %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("console still streaming after its context ended")
	}

	// A daemon that refuses (the domain is not running) is an error from
	// Console itself.
	f.console = func(c net.Conn, serial uint32) {
		writePacket(c, procDomainOpenConsole, packetReply, serial, statusError, errorPayload(55, "domain is not running"))
	}
	if _, err := d.Console(ctx, io.Discard); err == nil || !strings.Contains(err.Error(), "domain is not running") {
		t.Errorf("console of a stopped domain: %v", err)
	}
}
