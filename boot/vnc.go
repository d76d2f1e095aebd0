package boot

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mitchellh/go-vnc"
)

// KeyEventer sends one RFB KeyEvent; *vnc.ClientConn implements it.
type KeyEventer interface {
	KeyEvent(keysym uint32, down bool) error
}

var _ KeyEventer = (*vnc.ClientConn)(nil)

// VNCSender types over a VNC connection with X11 keysyms, as Packer does.
// QEMU turns keysyms into scancodes through its -k keymap (en-us by default),
// which is where non-US layouts go wrong; prefer QMPSender when QMP is
// available.
type VNCSender struct {
	Conn KeyEventer
	// EventInterval, if positive, pauses between the events of a burst.
	// Packer pauses after every event; QEMU's VNC server already paces
	// key events itself (key-delay-ms, 10ms by default), so zero is fine
	// for QEMU.
	EventInterval time.Duration
}

// Keys implements Sender.
func (v *VNCSender) Keys(ctx context.Context, events []KeyEvent) error {
	for i, e := range events {
		sym, _, err := Keysym(e.Key)
		if err != nil {
			return err
		}
		if i > 0 && v.EventInterval > 0 {
			if err := sleep(ctx, v.EventInterval); err != nil {
				return err
			}
		}
		if err := v.Conn.KeyEvent(sym, e.Down); err != nil {
			return fmt.Errorf("VNC key event: %w", err)
		}
	}
	return nil
}

// DialVNC connects to a VNC server at addr (host:port) and completes the
// RFB handshake, using password authentication when password is not
// empty. The connection is shared (a human viewer may watch). The handshake
// honours ctx; close the returned connection when done.
func DialVNC(ctx context.Context, addr, password string) (*vnc.ClientConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to VNC at %s: %w", addr, err)
	}
	// go-vnc's handshake has no context: close the socket on cancellation
	// to unblock it.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	auth := []vnc.ClientAuth{new(vnc.ClientAuthNone)}
	if password != "" {
		auth = []vnc.ClientAuth{&vnc.PasswordAuth{Password: password}}
	}
	c, err := vnc.Client(nc, &vnc.ClientConfig{Auth: auth, Exclusive: false})
	if !stop() {
		if c != nil {
			c.Close()
		}
		nc.Close()
		return nil, fmt.Errorf("VNC handshake with %s: %w", addr, ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("VNC handshake with %s: %w", addr, err)
	}
	return c, nil
}
