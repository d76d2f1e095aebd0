package libvirt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// wireConn speaks libvirt's RPC protocol itself, for the calls go-libvirt
// gets wrong: those that stream data from the daemon (see download). Each
// runs on a connection of its own, read by one goroutine that holds no
// lock, so a stream cannot stall the build's connection either.
//
// The protocol (libvirt's src/rpc/virnetprotocol.x): each packet is a
// big-endian length that counts itself, a header of six 32-bit words
// (program, version, procedure, type, serial, status) and a payload, XDR
// for calls and replies, raw bytes for stream data.
type wireConn struct {
	conn   net.Conn
	r      *bufio.Reader
	serial uint32
}

const (
	wireProgram = 0x20008086 // REMOTE_PROGRAM
	wireVersion = 1

	procConnectOpen        = 1
	procConnectClose       = 2
	procAuthList           = 66
	procAuthPolkit         = 70
	procDomainOpenConsole  = 201
	procStorageVolDownload = 209
	procDomainScreenshot   = 211

	packetCall   = 0
	packetReply  = 1
	packetStream = 3

	statusOK       = 0
	statusError    = 1
	statusContinue = 2

	authNone   = 0
	authPolkit = 2

	// maxPacket is libvirt's VIR_NET_MESSAGE_MAX (a stream packet carries
	// at most 256 KiB of data; other messages are smaller still).
	maxPacket = 32 << 20
	headerLen = 24
)

type wireHeader struct {
	Program, Version, Procedure, Type, Serial, Status uint32
}

// dialWire connects to the daemon named by uri and opens its driver, as
// Dial does. ctx bounds the whole conversation: when it ends the socket is
// closed, which fails any read or write in progress.
func dialWire(ctx context.Context, uri string) (*wireConn, func(), error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing libvirt URI %q: %w", uri, err)
	}
	raw, err := dialTransport(ctx, u)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to %s: %w", uri, err)
	}
	var once sync.Once
	closeRaw := func() { once.Do(func() { raw.Close() }) }
	stop := context.AfterFunc(ctx, closeRaw)
	w := &wireConn{conn: raw, r: bufio.NewReaderSize(raw, 64<<10)}
	done := func() {
		stop()
		closeRaw()
	}
	if err := w.open(golibvirt.RemoteURI(u)); err != nil {
		done()
		return nil, nil, fmt.Errorf("opening %s: %w", uri, ctxErr(ctx, err))
	}
	return w, func() {
		// A polite close lets the daemon log nothing about a lost
		// client; it is bounded by ctx like everything else.
		w.call(procConnectClose, nil)
		done()
	}, nil
}

// ctxErr prefers the context's error over the closed socket's it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// open authenticates (only "none" and polkit, which need no exchange on a
// root or local socket, as with go-libvirt) and opens the driver.
func (w *wireConn) open(uri golibvirt.ConnectURI) error {
	reply, err := w.call(procAuthList, nil)
	if err != nil {
		return fmt.Errorf("listing auth types: %w", err)
	}
	d := xdrDecoder{b: reply}
	n := d.uint32()
	for range min(n, 20) {
		if d.uint32() == authPolkit {
			if _, err := w.call(procAuthPolkit, nil); err != nil {
				return fmt.Errorf("polkit auth: %w", err)
			}
			break
		}
	}
	if d.err != nil {
		return fmt.Errorf("decoding the auth types: %w", d.err)
	}
	var e xdrEncoder
	e.optString(string(uri))
	e.uint32(0) // flags
	if _, err := w.call(procConnectOpen, e.b); err != nil {
		return err
	}
	return nil
}

// call sends one call and returns its reply's payload, or the daemon's
// error. Packets for other serials (a stream's tail) are skipped.
func (w *wireConn) call(proc uint32, args []byte) ([]byte, error) {
	serial, err := w.send(proc, args)
	if err != nil {
		return nil, err
	}
	for {
		h, payload, err := w.read()
		if err != nil {
			return nil, err
		}
		if h.Serial != serial || h.Type != packetReply {
			continue
		}
		if h.Status == statusError {
			return nil, decodeWireError(payload)
		}
		return payload, nil
	}
}

func (w *wireConn) send(proc uint32, args []byte) (uint32, error) {
	w.serial++
	h := wireHeader{wireProgram, wireVersion, proc, packetCall, w.serial, statusOK}
	buf := make([]byte, 4+headerLen, 4+headerLen+len(args))
	binary.BigEndian.PutUint32(buf, uint32(4+headerLen+len(args)))
	for i, v := range []uint32{h.Program, h.Version, h.Procedure, h.Type, h.Serial, h.Status} {
		binary.BigEndian.PutUint32(buf[4+4*i:], v)
	}
	buf = append(buf, args...)
	if _, err := w.conn.Write(buf); err != nil {
		return 0, fmt.Errorf("sending libvirt call %d: %w", proc, err)
	}
	return w.serial, nil
}

func (w *wireConn) read() (wireHeader, []byte, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(w.r, lenBuf[:]); err != nil {
		return wireHeader{}, nil, fmt.Errorf("reading from libvirt: %w", err)
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n < 4+headerLen || n > maxPacket {
		return wireHeader{}, nil, fmt.Errorf("libvirt sent a packet of %d bytes", n)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(w.r, buf); err != nil {
		return wireHeader{}, nil, fmt.Errorf("reading from libvirt: %w", err)
	}
	var f [6]uint32
	for i := range f {
		f[i] = binary.BigEndian.Uint32(buf[4*i:])
	}
	h := wireHeader{f[0], f[1], f[2], f[3], f[4], f[5]}
	if h.Program != wireProgram {
		// Events of other programs (QEMU monitor events) are not asked
		// for on this connection; skip rather than misread them.
		h.Serial = 0
	}
	return h, buf[headerLen:], nil
}

// screenshot runs virDomainScreenshot of screen 0 and copies the image
// to out; it returns the image's MIME type as the daemon named it.
func (w *wireConn) screenshot(dom golibvirt.Domain, out io.Writer) (string, error) {
	var e xdrEncoder
	e.domain(dom)
	e.uint32(0) // screen
	e.uint32(0) // flags
	reply, err := w.download(procDomainScreenshot, e.b, out, nil)
	if err != nil {
		return "", err
	}
	d := xdrDecoder{b: reply}
	mime := d.optString()
	if d.err != nil {
		return "", fmt.Errorf("decoding the screenshot reply: %w", d.err)
	}
	return mime, nil
}

// download sends a call the daemon answers with a reply and a stream of
// data (a screenshot, a volume's bytes, a console's output), copies the
// stream to out and returns the reply's payload once both have ended.
//
// The stream is packets with status "continue", ended by an empty one
// (newer versions: an empty one with status "ok"). libvirtd 9.0 queues
// reply and stream independently: now and then the whole stream comes
// before the reply. go-libvirt takes the first packet for the reply, so
// it loses the first chunk of data and then hangs (its router blocks
// handing the late reply to a caller that stopped reading, while holding
// the lock that caller needs). Here both are awaited, in any order. An
// error packet, reply or stream, is the daemon's error.
//
// replied, when not nil, is called once the reply arrived: the daemon
// set the stream up.
func (w *wireConn) download(proc uint32, args []byte, out io.Writer, replied func()) ([]byte, error) {
	serial, err := w.send(proc, args)
	if err != nil {
		return nil, err
	}
	var reply []byte
	var gotReply, ended bool
	for !gotReply || !ended {
		h, payload, err := w.read()
		if err != nil {
			return nil, err
		}
		if h.Serial != serial {
			continue
		}
		if h.Status == statusError {
			return nil, decodeWireError(payload)
		}
		switch h.Type {
		case packetReply:
			reply, gotReply = payload, true
			if replied != nil {
				replied()
			}
		case packetStream:
			if ended {
				continue // a second end marker
			}
			if h.Status == statusOK || len(payload) == 0 {
				ended = true
				continue
			}
			if _, err := out.Write(payload); err != nil {
				return nil, err
			}
		}
	}
	return reply, nil
}

// decodeWireError reads the code and message of a virNetMessageError as
// go-libvirt's Error, so callers tell the daemon's answers from lost
// connections the same way for both clients.
func decodeWireError(payload []byte) error {
	d := xdrDecoder{b: payload}
	code := d.uint32()
	d.uint32() // domain
	msg := d.optString()
	if d.err != nil {
		return fmt.Errorf("libvirt error %d (undecodable: %w)", code, d.err)
	}
	return golibvirt.Error{Code: code, Message: msg}
}

// xdrEncoder and xdrDecoder cover the XDR this client needs: unsigned
// ints, strings and optional strings (RFC 4506: a string is its length
// and bytes padded to four; an optional value is a boolean word, then the
// value when true).
type xdrEncoder struct{ b []byte }

func (e *xdrEncoder) uint32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }

func (e *xdrEncoder) str(s string) {
	e.uint32(uint32(len(s)))
	e.b = append(e.b, s...)
	e.b = append(e.b, make([]byte, pad4(len(s)))...)
}

func (e *xdrEncoder) uint64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

// domain is a remote_nonnull_domain: name, UUID, ID. The daemon finds the
// domain by its UUID.
func (e *xdrEncoder) domain(d golibvirt.Domain) {
	e.str(d.Name)
	e.b = append(e.b, d.UUID[:]...)
	e.uint32(uint32(d.ID))
}

func (e *xdrEncoder) optString(s string) {
	e.uint32(1)
	e.str(s)
}

type xdrDecoder struct {
	b   []byte
	err error
}

var errShort = errors.New("message ends early")

func (d *xdrDecoder) uint32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *xdrDecoder) str() string {
	n := int(d.uint32())
	if d.err != nil {
		return ""
	}
	if n > len(d.b) || n+pad4(n) > len(d.b) {
		d.err = errShort
		return ""
	}
	s := string(bytes.Clone(d.b[:n]))
	d.b = d.b[n+pad4(n):]
	return s
}

func (d *xdrDecoder) optString() string {
	if d.uint32() == 0 {
		return ""
	}
	return d.str()
}

func pad4(n int) int { return (4 - n%4) % 4 }
