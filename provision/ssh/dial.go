// Package ssh is kiln's SSH communicator: it waits for the guest's sshd,
// runs commands and transfers files over SFTP, and reconnects after the
// guest reboots.
//
// Waiting is the delicate part. QEMU's user-mode network forwards
// 127.0.0.1:PORT to guest:22, and until sshd is up in the guest a TCP
// connect to PORT still succeeds (slirp accepts it) and is then closed. So
// "not ready yet" looks like a handshake EOF, not like a refused
// connection, and the loop below treats every failure except an
// authentication failure as "not ready, try again soon".
package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// Config says how to reach and log in to the guest.
type Config struct {
	Host string
	Port int
	User string
	// Password is used for password and keyboard-interactive
	// authentication; empty disables both.
	Password string
	// PrivateKey is an unencrypted PEM private key (OpenSSH, PKCS#1 or
	// PKCS#8); empty disables public key authentication.
	PrivateKey []byte
	// Timeout bounds the wait for the guest (ssh_timeout). 0 means 5m,
	// Packer's default.
	Timeout time.Duration
	// HandshakeAttempts is how many authentication failures to tolerate
	// (ssh_handshake_attempts). Not-ready failures (EOF, reset, refused)
	// do not count. 0 means 10, Packer's default.
	HandshakeAttempts int
	// KeepAlive is the interval between keepalive@openssh.com requests
	// (ssh_keep_alive_interval). 0 means 5s. A connection that does not
	// answer for three intervals is closed as dead.
	KeepAlive time.Duration
	// Alive, if set, is called before every connection attempt. A non-nil
	// error stops the wait at once and is returned wrapped; kiln uses it
	// to notice that QEMU exited.
	Alive func() error
	// Log, if set, receives debug lines (attempt errors).
	Log func(format string, args ...any)
}

const (
	defaultTimeout           = 5 * time.Minute
	defaultHandshakeAttempts = 10
	defaultKeepAlive         = 5 * time.Second

	// dialTimeout bounds one TCP connect. Through slirp the connect is
	// local and instant; this only matters if something else is wrong.
	dialTimeout = time.Second
	// bannerTimeout bounds the wait for the server's first bytes. Before
	// the guest's network is up, slirp neither accepts nor refuses on the
	// guest side: the connection just hangs, and slirp's own SYN retries
	// back off over seconds. A fresh connection every second instead
	// reaches sshd within about a second of it listening (measured: the
	// old 3 s-then-doubling deadline cost ~4 s per build).
	bannerTimeout = time.Second
	// handshakeTimeout bounds the rest of the handshake once the banner
	// arrived. It doubles after each handshake that timed out after the
	// banner (a guest emulated under TCG can be slow to sign the key
	// exchange) up to maxHandshakeTimeout.
	handshakeTimeout    = 3 * time.Second
	maxHandshakeTimeout = 30 * time.Second
	// Retry delays: short, so kiln connects within about a second of
	// sshd becoming ready.
	firstRetryDelay = 100 * time.Millisecond
	maxRetryDelay   = 500 * time.Millisecond
)

func (cfg Config) withDefaults() Config {
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.HandshakeAttempts <= 0 {
		cfg.HandshakeAttempts = defaultHandshakeAttempts
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = defaultKeepAlive
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	return cfg
}

func (cfg Config) addr() string {
	return net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
}

// clientConfig builds the x/crypto client configuration and the names of
// the methods offered, for error messages.
func (cfg Config) clientConfig() (*ssh.ClientConfig, []string, error) {
	var (
		auth    []ssh.AuthMethod
		methods []string
	)
	if len(cfg.PrivateKey) > 0 {
		signer, err := ssh.ParsePrivateKey(cfg.PrivateKey)
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, nil, errors.New("parsing ssh private key: encrypted keys are not supported")
			}
			return nil, nil, fmt.Errorf("parsing ssh private key: %w", err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
		methods = append(methods, "publickey")
	}
	if cfg.Password != "" {
		pw := cfg.Password
		auth = append(auth,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				// Answer every prompt with the password: that is what
				// PAM's "Password:" prompt wants, and installers rarely
				// ask anything else.
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
		methods = append(methods, "password", "keyboard-interactive")
	}
	if len(auth) == 0 {
		return nil, nil, errors.New("ssh: no password and no private key to authenticate with")
	}
	return &ssh.ClientConfig{
		User: cfg.User,
		Auth: auth,
		// The guest is a throwaway build VM whose host key was generated
		// on its first boot moments ago: there is no known key to check it
		// against, and the connection only ever goes to 127.0.0.1.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}, methods, nil
}

var errWaitTimeout = errors.New("ssh wait timed out")

// dial waits until the guest accepts an SSH login, following the rules in
// the package comment.
func dial(ctx context.Context, cfg Config) (*ssh.Client, error) {
	cc, methods, err := cfg.clientConfig()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, errWaitTimeout)
	defer cancel()

	var (
		lastErr   error
		authFails int
		attempts  int
		hsTimeout = handshakeTimeout
		delay     = firstRetryDelay
	)
	for {
		if cfg.Alive != nil {
			if err := cfg.Alive(); err != nil {
				return nil, fmt.Errorf("waiting for SSH on %s: %w", cfg.addr(), err)
			}
		}
		attempts++
		client, bannerSeen, err := dialOnce(ctx, cfg.addr(), cc, hsTimeout)
		if err == nil {
			cfg.Log("ssh: connected to %s as %q after %s (%d attempts)", cfg.addr(), cfg.User, time.Since(start).Round(time.Millisecond), attempts)
			return client, nil
		}
		if ctx.Err() != nil {
			break
		}
		switch {
		case strings.Contains(err.Error(), "unable to authenticate"):
			authFails++
			if authFails >= cfg.HandshakeAttempts {
				return nil, fmt.Errorf("ssh: authentication failed for user %q with methods %v (%d attempts, ssh_handshake_attempts = %d): %w",
					cfg.User, methods, authFails, cfg.HandshakeAttempts, err)
			}
		case isTimeout(err) && bannerSeen:
			hsTimeout = min(2*hsTimeout, maxHandshakeTimeout)
		}
		if lastErr == nil || lastErr.Error() != err.Error() {
			cfg.Log("ssh: attempt %d to %s: %v", attempts, cfg.addr(), err)
		}
		lastErr = err

		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
		delay = min(delay*3/2, maxRetryDelay)
	}
	if context.Cause(ctx) != errWaitTimeout {
		return nil, fmt.Errorf("waiting for SSH on %s: %w", cfg.addr(), ctx.Err())
	}
	last := "none"
	if lastErr != nil {
		last = lastErr.Error()
	}
	return nil, fmt.Errorf("timeout waiting for SSH on %s after %s (%d attempts; last error: %s): "+
		"check ssh_username and ssh_password/ssh_private_key_file, that sshd is installed and running in the guest, "+
		"and the serial console log: %w",
		cfg.addr(), time.Since(start).Round(100*time.Millisecond), attempts, last, context.DeadlineExceeded)
}

// dialOnce makes one TCP connect and one SSH handshake. bannerSeen says
// whether the server sent anything, which tells "not up yet" from "slow".
func dialOnce(ctx context.Context, addr string, cc *ssh.ClientConfig, hsTimeout time.Duration) (_ *ssh.Client, bannerSeen bool, _ error) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	nc := &bannerConn{Conn: raw, hsTimeout: hsTimeout}
	if err := nc.SetDeadline(time.Now().Add(bannerTimeout)); err != nil {
		nc.Close()
		return nil, false, err
	}
	// The handshake has no context of its own: closing the socket is how
	// cancellation reaches it.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cc)
	if !stop() {
		if err == nil {
			c.Close()
		}
		return nil, nc.seen.Load(), ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, nc.seen.Load(), err
	}
	// The deadline was for the handshake only; clear it, or it would kill
	// the connection hsTimeout later.
	if err := nc.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, true, err
	}
	return ssh.NewClient(c, chans, reqs), true, nil
}

// bannerConn gives the handshake hsTimeout more from the moment the server's
// first bytes arrive.
type bannerConn struct {
	net.Conn
	hsTimeout time.Duration
	seen      atomic.Bool
}

func (b *bannerConn) Read(p []byte) (int, error) {
	n, err := b.Conn.Read(p)
	if n > 0 && !b.seen.Swap(true) {
		b.Conn.SetDeadline(time.Now().Add(b.hsTimeout))
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
