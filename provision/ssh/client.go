package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// ErrDisconnected is returned (wrapped) when the connection to the guest
// dropped during an operation: the guest rebooted, or stopped answering
// keepalives. The next call on the same Client reconnects.
var ErrDisconnected = errors.New("ssh: connection to the guest lost")

// ErrClosed is returned by calls on a Client after Close.
var ErrClosed = errors.New("ssh: client closed")

// Client is a connection to the guest that reconnects on demand. It is
// safe for concurrent use.
type Client struct {
	cfg Config
	// closing is cancelled by Close, to stop a reconnect in progress
	// without waiting for mu.
	closing context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex
	cur    *conn // nil when disconnected
	closed bool
}

// conn is one SSH connection and what hangs off it.
type conn struct {
	ssh  *ssh.Client
	done chan struct{} // closed once the connection is gone
	once sync.Once
	// why is set when kiln itself gave up on the connection (keepalive),
	// so the error can say so rather than blame the guest's sshd.
	why atomic.Pointer[string]

	sftpMu sync.Mutex
	sftp   *sftp.Client
}

// Connect waits for the guest's sshd (see Config) and logs in.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg}
	c.closing, c.cancel = context.WithCancel(context.Background())
	if _, err := c.get(ctx); err != nil {
		c.cancel()
		return nil, err
	}
	return c, nil
}

// Close closes the connection. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cur != nil {
		c.cur.close()
		c.cur = nil
	}
	return nil
}

// get returns the live connection, reconnecting if there is none.
func (c *Client) get(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cur != nil && !c.cur.dead() {
		return c.cur, nil
	}
	c.cur = nil
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.closing, cancel)
	defer stop()
	client, err := dial(ctx, c.cfg)
	if err != nil {
		if c.closing.Err() != nil {
			return nil, ErrClosed
		}
		return nil, err
	}
	cn := &conn{ssh: client, done: make(chan struct{})}
	go func() {
		client.Wait()
		close(cn.done)
	}()
	go cn.keepalive(c.cfg.KeepAlive, c.cfg.Log)
	c.cur = cn
	return cn, nil
}

// drop forgets cn (if still current) and closes it, so the next call
// reconnects.
func (c *Client) drop(cn *conn) {
	c.mu.Lock()
	if c.cur == cn {
		c.cur = nil
	}
	c.mu.Unlock()
	cn.close()
}

func (cn *conn) close() {
	cn.once.Do(func() {
		// The connection first: sftpClient may hold sftpMu while it waits
		// on this connection, and closing it is what releases it.
		cn.ssh.Close()
		cn.sftpMu.Lock()
		if cn.sftp != nil {
			cn.sftp.Close()
			cn.sftp = nil
		}
		cn.sftpMu.Unlock()
	})
}

// giveUp closes the connection, recording why for lost.
func (cn *conn) giveUp(why string) {
	cn.why.Store(&why)
	cn.close()
}

// lost describes how the connection was lost: the keepalive's verdict if
// it closed it, else what the caller saw.
func (cn *conn) lost(saw string) string {
	if why := cn.why.Load(); why != nil {
		return *why
	}
	return saw
}

func (cn *conn) dead() bool {
	select {
	case <-cn.done:
		return true
	default:
		return false
	}
}

// deadWithin reports whether the connection is gone or goes within d.
// An operation that failed oddly is often the first sign of a dropped
// connection, and the mux notices a moment later.
func (cn *conn) deadWithin(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-cn.done:
		return true
	case <-t.C:
		return false
	}
}

// keepalive sends keepalive@openssh.com every interval and closes the
// connection when a reply takes longer than three intervals: a hung or
// vanished guest then fails in-flight calls with ErrDisconnected instead
// of blocking them forever.
func (cn *conn) keepalive(interval time.Duration, logf func(string, ...any)) {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			// OpenSSH answers "failure" to this request; any answer
			// proves the connection is alive.
			_, _, err := cn.ssh.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		wait := time.NewTimer(3 * interval)
		select {
		case <-cn.done:
			wait.Stop()
			return
		case err := <-reply:
			wait.Stop()
			if err != nil {
				logf("ssh: keepalive failed: %v", err)
				cn.giveUp(fmt.Sprintf("keepalive failed: %v", err))
				return
			}
		case <-wait.C:
			logf("ssh: no keepalive reply for %s; closing the connection", 3*interval)
			cn.giveUp(fmt.Sprintf("the guest stopped answering (no keepalive reply for %s)", 3*interval))
			return
		}
		t.Reset(interval)
	}
}

// Run runs cmd in the guest and returns its exit status; a non-zero
// status is not an error. stdin may be nil (a stdin that never ends is
// read until the command exits, then abandoned); stdout and stderr may be
// nil to discard. If the connection drops before the command exits the
// error wraps ErrDisconnected; if ctx ends first the session is closed
// and ctx.Err() returned.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	cn, sess, err := c.session(ctx)
	if err != nil {
		return -1, err
	}
	defer sess.Close()
	sess.Stdout = stdout
	sess.Stderr = stderr
	var stdinPipe io.WriteCloser
	if stdin != nil {
		// Copy stdin ourselves rather than through sess.Stdin: Wait waits
		// for that copy, so a reader that never ends would hang Run.
		if stdinPipe, err = sess.StdinPipe(); err != nil {
			return -1, fmt.Errorf("ssh: opening stdin: %w", err)
		}
	}
	if err := sess.Start(cmd); err != nil {
		if cn.deadWithin(100 * time.Millisecond) {
			c.drop(cn)
			return -1, fmt.Errorf("%w: starting command: %v", ErrDisconnected, err)
		}
		return -1, fmt.Errorf("ssh: starting command: %w", err)
	}
	if stdin != nil {
		go func() {
			io.Copy(stdinPipe, stdin)
			stdinPipe.Close()
		}()
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()

	select {
	case err = <-waited:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		// The session ends when the guest acknowledges the close; a hung
		// guest never does, so fall back to dropping the connection. Wait
		// either way, so nothing writes to stdout after Run returns.
		t := time.NewTimer(time.Second)
		select {
		case <-waited:
		case <-t.C:
			c.drop(cn)
			<-waited
		}
		t.Stop()
		return -1, ctx.Err()
	}

	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitStatus(), nil
	case errors.As(err, &missing):
		// The channel closed without an exit status: sshd went away
		// mid-command, which is what a reboot looks like.
		c.drop(cn)
		return -1, fmt.Errorf("%w: %s", ErrDisconnected, cn.lost("command ended without an exit status"))
	case cn.deadWithin(500 * time.Millisecond):
		c.drop(cn)
		return -1, fmt.Errorf("%w: %s", ErrDisconnected, cn.lost(err.Error()))
	default:
		return -1, fmt.Errorf("ssh: waiting for command: %w", err)
	}
}

// session opens a session, reconnecting once if the current connection
// turns out to be dead (e.g. the guest rebooted after the last command
// returned).
func (c *Client) session(ctx context.Context) (*conn, *ssh.Session, error) {
	for try := 0; ; try++ {
		cn, err := c.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		sess, err := cn.ssh.NewSession()
		if err == nil {
			return cn, sess, nil
		}
		if !cn.deadWithin(100 * time.Millisecond) {
			return nil, nil, fmt.Errorf("ssh: opening session: %w", err)
		}
		c.drop(cn)
		if try > 0 {
			return nil, nil, fmt.Errorf("%w: opening session: %v", ErrDisconnected, err)
		}
	}
}
