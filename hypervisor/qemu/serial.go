package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serialHistory is how much recent console output WaitFor can look back on.
const serialHistory = 64 << 10

// Console reads the guest's serial console from QEMU's chardev socket
// (Spec.SerialSocket). It keeps reading in a goroutine for as long as the
// socket is open, so the guest never stalls on a full socket buffer, and
// it writes the complete transcript to its log file.
//
// kiln writes that log itself instead of using the chardev's logfile=
// option: QEMU (7.2, char.c) logs a byte even when sending it to the socket
// failed with EAGAIN, and its 16550 emulation then sends and logs the same
// byte again, so logfile= doubles a byte whenever the reader falls ~278
// one-byte messages behind (an AF_UNIX socket counts messages, not bytes),
// which happens under host load. What arrives on the socket is exact.
type Console struct {
	conn net.Conn
	log  *os.File // the transcript; nil: not logging (or a write failed)

	mu      sync.Mutex
	hist    []byte // the last serialHistory bytes read
	base    int64  // stream offset of hist[0]
	changed chan struct{}
	err     error // why reading stopped; set before done is closed
	done    chan struct{}

	lines chan string // to the Lines tap; nil until Lines is called
	tapWG sync.WaitGroup
	part  []byte // incomplete last line for the tap
}

// DialSerial connects to the serial chardev socket at sockPath, retrying
// while QEMU has not created it yet, until ctx is done, and writes all it
// reads to logPath (created or truncated; "" for no log). ctx does not
// limit the life of the Console. QEMU drops console output while no client
// is connected, so connect before the guest runs (QEMU started with -S).
func DialSerial(ctx context.Context, sockPath, logPath string) (_ *Console, err error) {
	var log *os.File
	if logPath != "" {
		if log, err = os.Create(logPath); err != nil {
			return nil, fmt.Errorf("creating the serial console log: %w", err)
		}
		defer func() {
			if err != nil {
				log.Close()
			}
		}()
	}
	var d net.Dialer
	wait := 5 * time.Millisecond
	for {
		conn, err := d.DialContext(ctx, "unix", sockPath)
		if err == nil {
			c := &Console{conn: conn, log: log, changed: make(chan struct{}), done: make(chan struct{})}
			go c.read()
			return c, nil
		}
		if ctx.Err() == nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("connecting to serial console %s: %w", sockPath, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connecting to serial console %s: %w (last error: %v)", sockPath, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

func (c *Console) read() {
	buf := make([]byte, 4096)
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			c.writeLog(buf[:n])
			c.append(buf[:n])
		}
		if err != nil {
			if c.log != nil {
				c.log.Close()
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("serial console closed by QEMU")
			} else {
				err = fmt.Errorf("reading serial console: %w", err)
			}
			c.mu.Lock()
			c.err = err
			c.flushTap()
			if c.lines != nil {
				close(c.lines)
			}
			close(c.done)
			close(c.changed)
			c.mu.Unlock()
			return
		}
	}
}

// writeLog appends p to the transcript. A failed write (a full disk) ends
// logging but not reading: the guest must not stall on its console.
func (c *Console) writeLog(p []byte) {
	if c.log == nil {
		return
	}
	if _, err := c.log.Write(p); err != nil {
		c.log.Close()
		c.log = nil
	}
}

func (c *Console) append(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hist = append(c.hist, p...)
	if over := len(c.hist) - serialHistory; over > 0 {
		c.hist = append(c.hist[:0], c.hist[over:]...)
		c.base += int64(over)
	}
	if c.lines != nil {
		c.part = append(c.part, p...)
		for {
			i := bytes.IndexByte(c.part, '\n')
			if i < 0 {
				break
			}
			c.tap(strings.TrimRight(string(c.part[:i]), "\r"))
			c.part = c.part[i+1:]
		}
		if len(c.part) > serialHistory { // a "line" with no end: pass it on
			c.flushTap()
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// tap hands a line to the Lines goroutine; if it is more than 1024 lines
// behind, the line is dropped rather than stalling the reader (and through
// it the guest). Called with mu held.
func (c *Console) tap(line string) {
	select {
	case c.lines <- line:
	default:
	}
}

func (c *Console) flushTap() {
	if c.lines != nil && len(c.part) > 0 {
		c.tap(strings.TrimRight(string(c.part), "\r"))
		c.part = nil
	}
}

// Lines calls fn with each complete line the guest prints from now on
// (without the line ending), in order, from a separate goroutine, e.g. to
// stream the console to the UI. A slow fn never slows the guest: lines it
// cannot keep up with (more than 1024 behind) are dropped. Calling Lines
// again replaces nothing; only the first call has effect.
func (c *Console) Lines(fn func(string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lines != nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.lines = make(chan string, 1024)
	ch := c.lines
	c.tapWG.Go(func() {
		for l := range ch {
			fn(l)
		}
	})
}

// WaitFor waits until text appears on the console, ctx ends, or the
// console closes.
//
// The search covers the recent history (the last 64 KiB), so text printed
// before WaitFor was called still counts while it is in that window; and
// it matches across read boundaries. A second WaitFor for the same text
// therefore returns at once: wait for something later in the output (or
// use a distinct marker) to wait for a new occurrence.
func (c *Console) WaitFor(ctx context.Context, text string) error {
	if text == "" {
		return nil
	}
	needle := []byte(text)
	var from int64 // stream offset from which the text may still start
	for {
		c.mu.Lock()
		start := max(from, c.base) - c.base
		if bytes.Contains(c.hist[start:], needle) {
			c.mu.Unlock()
			return nil
		}
		from = max(c.base+int64(len(c.hist))-int64(len(needle))+1, 0)
		changed, err := c.changed, c.err
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("waiting for %q on the serial console: %w", text, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q on the serial console: %w", text, ctx.Err())
		}
	}
}

// Write sends p to the guest's serial port (its input).
func (c *Console) Write(p []byte) (int, error) { return c.conn.Write(p) }

// Done is closed when the console connection ends (normally: QEMU exited).
func (c *Console) Done() <-chan struct{} { return c.done }

// Close disconnects and waits for the reader and the Lines goroutine to
// finish, which closes the log. QEMU keeps running; its further console
// output is lost, so close only once the guest is gone.
func (c *Console) Close() error {
	c.conn.Close()
	<-c.done
	c.tapWG.Wait()
	return nil
}
