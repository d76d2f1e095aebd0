package boot

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type rfbKey struct {
	Sym  uint32
	Down bool
}

// fakeRFB is a minimal RFB 3.8 server: it offers one security type, skips
// checking the VNC-auth response, and records KeyEvent messages until the
// client disconnects.
type fakeRFB struct {
	ln       net.Listener
	secType  byte
	keys     chan rfbKey
	authResp chan []byte
}

func newFakeRFB(t *testing.T, secType byte) *fakeRFB {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRFB{ln: ln, secType: secType, keys: make(chan rfbKey, 64), authResp: make(chan []byte, 1)}
	t.Cleanup(func() { ln.Close() })
	go f.serve()
	return f
}

func (f *fakeRFB) serve() {
	c, err := f.ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	defer close(f.keys)
	buf := make([]byte, 16)
	if _, err := io.WriteString(c, "RFB 003.008\n"); err != nil {
		return
	}
	if _, err := io.ReadFull(c, buf[:12]); err != nil {
		return
	}
	c.Write([]byte{1, f.secType})
	if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != f.secType {
		return
	}
	if f.secType == 2 {
		c.Write(make([]byte, 16)) // challenge
		if _, err := io.ReadFull(c, buf[:16]); err != nil {
			return
		}
		f.authResp <- append([]byte(nil), buf[:16]...)
	}
	binary.Write(c, binary.BigEndian, uint32(0))       // SecurityResult OK
	if _, err := io.ReadFull(c, buf[:1]); err != nil { // ClientInit shared flag
		return
	}
	name := "QEMU (fake)"
	binary.Write(c, binary.BigEndian, []uint16{720, 400})
	c.Write(make([]byte, 16)) // pixel format
	binary.Write(c, binary.BigEndian, uint32(len(name)))
	io.WriteString(c, name)
	for {
		var msg [8]byte
		if _, err := io.ReadFull(c, msg[:]); err != nil || msg[0] != 4 {
			return
		}
		f.keys <- rfbKey{binary.BigEndian.Uint32(msg[4:]), msg[1] == 1}
	}
}

func TestVNCSenderTypesKeysyms(t *testing.T) {
	f := newFakeRFB(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialVNC(ctx, f.ln.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.DesktopName != "QEMU (fake)" {
		t.Errorf("DesktopName = %q", c.DesktopName)
	}
	s := &VNCSender{Conn: c, EventInterval: time.Microsecond}
	if err := Type(ctx, mustParse(t, "aZ<enter><leftCtrlOn>~<leftCtrlOff>"), s, TypeOptions{KeyInterval: -1}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var got []rfbKey
	for k := range f.keys {
		got = append(got, k)
	}
	want := []rfbKey{
		{'a', true}, {'a', false},
		{0xFFE1, true}, {'Z', true}, {'Z', false}, {0xFFE1, false},
		{0xFF0D, true}, {0xFF0D, false},
		{0xFFE3, true}, {0xFFE1, true}, {'~', true}, {'~', false}, {0xFFE1, false}, {0xFFE3, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RFB key events mismatch (-want +got):\n%s", diff)
	}
}

func TestDialVNCPassword(t *testing.T) {
	f := newFakeRFB(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialVNC(ctx, f.ln.Addr().String(), "secret")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp := <-f.authResp; len(resp) != 16 || string(resp) == string(make([]byte, 16)) {
		t.Errorf("VNC auth response = %x, want a 16-byte DES response", resp)
	}
}

func TestDialVNCHonoursContext(t *testing.T) {
	// A server that accepts and then says nothing, like a VNC port still
	// owned by a starting QEMU.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = DialVNC(ctx, ln.Addr().String(), "")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "VNC handshake") {
		t.Errorf("DialVNC error = %v, want a handshake deadline error", err)
	}
}

func TestVNCSenderError(t *testing.T) {
	s := &VNCSender{Conn: failingConn{}}
	err := s.Keys(context.Background(), []KeyEvent{down(sp("tab"))})
	if err == nil || !strings.Contains(err.Error(), "VNC key event: closed") {
		t.Errorf("Keys error = %v", err)
	}
}

type failingConn struct{}

func (failingConn) KeyEvent(uint32, bool) error { return errors.New("closed") }
