// Package libvirt runs build VMs through a libvirt daemon, local or remote,
// with the pure-Go RPC client github.com/digitalocean/go-libvirt. Everything
// a build needs goes over libvirt's RPC protocol, disk images included
// (storage volume upload and download streams), so a remote host needs no
// shared filesystem and no second channel. The calls that stream data from
// the daemon use a client of this package's own instead (wireConn).
//
// go-libvirt's calls take no context. Conn bounds each call: when the
// context ends first, the connection is closed, which fails every call in
// flight, and the Conn is unusable afterwards. A build that was cancelled
// cleans up on a fresh connection.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultCallTimeout bounds an RPC whose caller's context has no deadline.
const DefaultCallTimeout = 2 * time.Minute

// Conn is a connection to one libvirt daemon.
type Conn struct {
	URI string
	l   *golibvirt.Libvirt
	raw net.Conn

	closeOnce sync.Once
	broken    atomic.Bool // a call timed out and closed the connection
}

// DialOptions tune Dial.
type DialOptions struct {
	// Timeout bounds connecting and authenticating; zero means 30 s.
	Timeout time.Duration
}

// Dial connects to the libvirt daemon named by uri: qemu:///system,
// qemu:///session, qemu+unix:///system?socket=PATH, qemu+tcp://HOST[:PORT]/system
// or qemu+ssh://[USER@]HOST[:PORT]/system. For ssh, the keys come from
// ?keyfile=PATH, the ssh agent ($SSH_AUTH_SOCK) and ~/.ssh/id_{ed25519,ecdsa,rsa};
// the host key is checked against ~/.ssh/known_hosts (?known_hosts=PATH)
// unless ?no_verify=1.
func Dial(ctx context.Context, uri string, o DialOptions) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("parsing libvirt URI %q: %w", uri, err)
	}
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	raw, err := dialTransport(dctx, u)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", uri, err)
	}
	c := &Conn{URI: uri, raw: raw, l: golibvirt.NewWithDialer(dialers.NewAlreadyConnected(raw))}
	err = c.call(dctx, func() error { return c.l.ConnectToURI(golibvirt.RemoteURI(u)) })
	if err != nil {
		c.raw.Close()
		return nil, fmt.Errorf("opening %s: %w", uri, err)
	}
	return c, nil
}

// Close ends the connection.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- c.l.Disconnect() }()
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			err = errors.New("libvirt did not answer the disconnect")
		}
		c.raw.Close()
	})
	return err
}

// Alive reports whether the connection can still be used: false after a
// call was cut off by its context or the daemon went away.
func (c *Conn) Alive() bool { return !c.broken.Load() && c.l.IsConnected() }

// Raw is the go-libvirt client, for calls this package does not wrap.
// Its calls are unbounded.
func (c *Conn) Raw() *golibvirt.Libvirt { return c.l }

// call runs fn, one or more RPCs, bounded by ctx (or DefaultCallTimeout
// when ctx has no deadline). On expiry the connection is closed so fn
// returns, and the context's error is returned. If fn still has not
// returned after callGrace it is abandoned: go-libvirt's router can
// deadlock on a stream packet that arrives after the stream's caller
// stopped reading (it sends to an unbuffered channel while holding the
// lock the caller needs to deregister), and closing the socket does not
// free either goroutine.
func (c *Conn) call(ctx context.Context, fn func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.broken.Store(true)
		c.raw.Close()
		t := time.NewTimer(callGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
		return fmt.Errorf("libvirt call to %s: %w", c.URI, context.Cause(ctx))
	}
}

// callGrace is how long call waits for an RPC to return once its
// connection was closed under it.
const callGrace = 5 * time.Second

// transport is the part after '+' in the scheme; "unix" when absent.
func transport(u *url.URL) string {
	if _, t, ok := strings.Cut(u.Scheme, "+"); ok {
		return t
	}
	if u.Host != "" {
		return "tls"
	}
	return "unix"
}

func dialTransport(ctx context.Context, u *url.URL) (net.Conn, error) {
	var d net.Dialer
	switch t := transport(u); t {
	case "unix":
		sock := u.Query().Get("socket")
		if sock == "" {
			var err error
			if sock, err = localSocket(u.Path); err != nil {
				return nil, err
			}
		}
		return d.DialContext(ctx, "unix", sock)
	case "tcp":
		port := u.Port()
		if port == "" {
			port = "16509"
		}
		return d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	case "ssh", "libssh", "libssh2":
		return dialSSH(ctx, u)
	default:
		return nil, fmt.Errorf("unsupported libvirt transport %q (use unix, tcp or ssh)", t)
	}
}

// localSocket finds the daemon socket for qemu:///system or
// qemu:///session. Monolithic libvirtd and the modular virtqemud use
// different names; the first that exists wins.
func localSocket(path string) (string, error) {
	var dirs []string
	switch path {
	case "/system", "":
		dirs = []string{"/run/libvirt", "/var/run/libvirt"}
	case "/session":
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			dirs = append(dirs, filepath.Join(d, "libvirt"))
		}
		if h, err := os.UserHomeDir(); err == nil {
			dirs = append(dirs, filepath.Join(h, ".cache", "libvirt"))
		}
	default:
		return "", fmt.Errorf("unknown libvirt URI path %q (want /system or /session)", path)
	}
	var tried []string
	for _, d := range dirs {
		for _, name := range []string{"libvirt-sock", "virtqemud-sock"} {
			p := filepath.Join(d, name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", fmt.Errorf("no libvirt daemon socket (is libvirtd running? tried %s)", strings.Join(tried, ", "))
}

// sshConn is a unix socket forwarded over SSH; closing it closes the SSH
// client too.
type sshConn struct {
	net.Conn
	client *ssh.Client
}

func (c *sshConn) Close() error {
	err := c.Conn.Close()
	c.client.Close()
	return err
}

func dialSSH(ctx context.Context, u *url.URL) (net.Conn, error) {
	q := u.Query()
	username := u.User.Username()
	if username == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("no user in the URI and no current user: %w", err)
		}
		username = cur.Username
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	auth, closeAgent, err := sshAuth(q.Get("keyfile"))
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	hostKey := ssh.InsecureIgnoreHostKey() //nolint:gosec // only with ?no_verify=1
	if q.Get("no_verify") != "1" {
		path := q.Get("known_hosts")
		if path == "" {
			home, _ := os.UserHomeDir()
			path = filepath.Join(home, ".ssh", "known_hosts")
		}
		if hostKey, err = knownhosts.New(path); err != nil {
			return nil, fmt.Errorf("reading known hosts %s (or add ?no_verify=1 to the URI): %w", path, err)
		}
	}
	cfg := &ssh.ClientConfig{User: username, Auth: auth, HostKeyCallback: hostKey}
	if dl, ok := ctx.Deadline(); ok {
		cfg.Timeout = time.Until(dl)
	}
	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake has no context; a deadline on the socket bounds it.
	if dl, ok := ctx.Deadline(); ok {
		tcp.SetDeadline(dl)
	}
	sc, chans, reqs, err := ssh.NewClientConn(tcp, addr, cfg)
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("ssh to %s@%s: %w", username, addr, err)
	}
	tcp.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	sock := q.Get("socket")
	if sock == "" {
		sock = "/var/run/libvirt/libvirt-sock"
		if u.Path == "/session" {
			return nil, errors.New("qemu+ssh:///session needs ?socket=PATH (the remote user's session socket)")
		}
	}
	conn, err := client.Dial("unix", sock)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("opening %s on %s over ssh: %w", sock, addr, err)
	}
	return &sshConn{Conn: conn, client: client}, nil
}

// sshAuth collects public-key signers: the URI's keyfile, the agent's
// keys, and the user's default keys.
func sshAuth(keyfile string) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	closeAgent := func() {}
	files := []string{keyfile}
	if keyfile == "" {
		home, _ := os.UserHomeDir()
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			files = append(files, filepath.Join(home, ".ssh", n))
		}
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		pem, err := os.ReadFile(f)
		if err != nil {
			if keyfile != "" {
				return nil, closeAgent, fmt.Errorf("reading ssh keyfile: %w", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, closeAgent, fmt.Errorf("parsing ssh key %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if ac, err := net.Dial("unix", sock); err == nil {
			closeAgent = func() { ac.Close() }
			if more, err := agent.NewClient(ac).Signers(); err == nil {
				signers = append(signers, more...)
			}
		}
	}
	if len(signers) == 0 {
		return nil, closeAgent, errors.New("no ssh key: add ?keyfile=PATH to the URI or start an ssh agent")
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}
