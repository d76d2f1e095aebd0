// Package sshtest runs an in-process SSH server for tests: exec requests
// run /bin/sh on the host, and the sftp subsystem serves the host's real
// file system. It can imitate a guest that is still booting (ReadyAfter),
// rebooting (DropConnections) or hung (Hang).
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Options configures a Server.
type Options struct {
	// User is the only user accepted; empty accepts any user name.
	User string
	// Password enables password and keyboard-interactive authentication.
	Password string
	// AuthorizedKey ("ssh-ed25519 AAAA... comment") enables public key
	// authentication with that key. With neither Password nor
	// AuthorizedKey, any client is let in without authentication.
	AuthorizedKey string
	// Dir is the working directory of commands and of relative SFTP
	// paths; default t.TempDir(). (pkg/sftp's server also resolves a
	// relative symlink target against Dir, unlike OpenSSH, which stores
	// it as sent.)
	Dir string
	// ReadyAfter makes the server, for that long after Start, accept TCP
	// connections and close them at once without a handshake: what QEMU's
	// slirp does before the guest's sshd is up.
	ReadyAfter time.Duration
	// SilentUntilReady makes not-ready connections hang instead: accepted,
	// never answered, never closed. That is slirp before the guest's
	// network is up.
	SilentUntilReady bool
}

// Server is a running test SSH server.
type Server struct {
	// Addr is the listening address, 127.0.0.1:port.
	Addr string

	t       testing.TB
	opts    Options
	cfg     *ssh.ServerConfig
	ln      net.Listener
	readyAt time.Time
	wg      sync.WaitGroup

	mu     sync.Mutex
	conns  map[*gateConn]struct{}
	silent []net.Conn // SilentUntilReady connections, closed by Close
	closed bool
}

// Start starts a server on 127.0.0.1 and stops it on t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, opts: opts, conns: map[*gateConn]struct{}{}}
	s.cfg = s.serverConfig()
	s.cfg.AddHostKey(signer)

	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = s.ln.Addr().String()
	s.readyAt = time.Now().Add(opts.ReadyAfter)
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serverConfig() *ssh.ServerConfig {
	o := s.opts
	userOK := func(u string) bool { return o.User == "" || u == o.User }
	cfg := &ssh.ServerConfig{}
	if o.Password != "" {
		cfg.PasswordCallback = func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if userOK(c.User()) && string(pw) == o.Password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
		cfg.KeyboardInteractiveCallback = func(c ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			answers, err := ask(c.User(), "", []string{"Password: "}, []bool{false})
			if err != nil {
				return nil, err
			}
			if userOK(c.User()) && len(answers) == 1 && answers[0] == o.Password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	if o.AuthorizedKey != "" {
		want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(o.AuthorizedKey))
		if err != nil {
			s.t.Fatalf("sshtest: bad AuthorizedKey: %v", err)
		}
		cfg.PublicKeyCallback = func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if userOK(c.User()) && bytes.Equal(key.Marshal(), want.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		}
	}
	if o.Password == "" && o.AuthorizedKey == "" {
		cfg.NoClientAuth = true
	}
	return cfg
}

// ReadyAt is when the server starts doing SSH handshakes (Start plus
// Options.ReadyAfter).
func (s *Server) ReadyAt() time.Time { return s.readyAt }

// DropConnections closes every live connection, as a guest reboot does.
// Commands running for them are killed. New connections are accepted.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Hang makes every live connection stop reading and writing without
// closing, as a hung guest does; only the client's keepalive can notice.
// New connections are served normally.
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.hang()
	}
}

// Close stops the server, closes all connections and waits for their
// goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	for _, c := range s.silent {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		if time.Now().Before(s.readyAt) {
			if s.opts.SilentUntilReady {
				s.mu.Lock()
				s.silent = append(s.silent, nc)
				s.mu.Unlock()
			} else {
				nc.Close()
			}
			continue
		}
		gc := &gateConn{Conn: nc, closed: make(chan struct{}), hung: make(chan struct{})}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[gc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(gc)
			s.mu.Lock()
			delete(s.conns, gc)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) serveConn(gc *gateConn) {
	defer gc.Close()
	sconn, chans, reqs, err := ssh.NewServerConn(gc, s.cfg)
	if err != nil {
		return
	}
	gone := make(chan struct{})
	go func() {
		sconn.Wait()
		close(gone)
	}()
	// Global requests (keepalive@openssh.com) get "failure", like
	// OpenSSH: any answer tells the client the connection is alive.
	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			s.serveSession(ch, creqs, gone)
		}()
	}
	gc.Close()
	sessions.Wait()
}

// serveSession handles one session channel: env, exec and the sftp
// subsystem.
func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request, gone <-chan struct{}) {
	defer ch.Close()
	var (
		env     []string
		started bool
		done    = make(chan struct{})
		closed  = make(chan struct{}) // client closed the channel
	)
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if err := ssh.Unmarshal(req.Payload, &kv); err != nil {
				req.Reply(false, nil)
				continue
			}
			env = append(env, kv.Name+"="+kv.Value)
			req.Reply(true, nil)
		case "exec":
			var p struct{ Command string }
			if started || ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				continue
			}
			started = true
			req.Reply(true, nil)
			go func() {
				defer close(done)
				s.exec(ch, p.Command, env, gone, closed)
			}()
		case "subsystem":
			var p struct{ Name string }
			if started || ssh.Unmarshal(req.Payload, &p) != nil || p.Name != "sftp" {
				req.Reply(false, nil)
				continue
			}
			started = true
			req.Reply(true, nil)
			go func() {
				defer close(done)
				srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(s.opts.Dir))
				if err != nil {
					return
				}
				srv.Serve()
				srv.Close()
				ch.Close()
			}()
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	close(closed)
	if started {
		<-done
	}
}

// exec runs command under /bin/sh and sends its exit status. The process
// group is killed if the connection drops or the client closes the
// channel first, so tests leave nothing running.
func (s *Server) exec(ch ssh.Channel, command string, env []string, gone, closed <-chan struct{}) {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = s.opts.Dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Background children that keep stdout open must not hold the exit
	// status back for long.
	cmd.WaitDelay = 500 * time.Millisecond
	stdin, err := cmd.StdinPipe()
	if err != nil {
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{255}))
		ch.Close()
		return
	}
	if err := cmd.Start(); err != nil {
		io.WriteString(ch.Stderr(), err.Error()+"\n")
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{127}))
		ch.Close()
		return
	}
	// Not waited for: a client that never closes stdin must not keep
	// the command from finishing.
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	exited := make(chan struct{})
	go func() {
		select {
		case <-gone:
		case <-closed:
		case <-exited:
			return
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}()
	err = cmd.Wait()
	close(exited)
	status := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
	} else if err != nil {
		status = 255
	}
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
	ch.Close()
}

// gateConn is a net.Conn that Hang can freeze.
type gateConn struct {
	net.Conn
	closeOnce sync.Once
	closed    chan struct{}
	hangOnce  sync.Once
	hung      chan struct{}
}

func (c *gateConn) hang() { c.hangOnce.Do(func() { close(c.hung) }) }

func (c *gateConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// wait blocks a hung connection until it is closed.
func (c *gateConn) wait() error {
	select {
	case <-c.hung:
		<-c.closed
		return net.ErrClosed
	default:
		return nil
	}
}

func (c *gateConn) Read(p []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err == nil {
		// Data that arrived while a Read was already waiting must not
		// get through once hung.
		if werr := c.wait(); werr != nil {
			return 0, werr
		}
	}
	return n, err
}

func (c *gateConn) Write(p []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
