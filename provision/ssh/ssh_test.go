package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/provision/ssh"
	"github.com/kilnbuild/kiln/provision/ssh/sshtest"
)

const (
	user = "kiln"
	pass = "s3cret"
)

// config returns a Config for srv with short timeouts.
func config(t *testing.T, srv *sshtest.Server) ssh.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return ssh.Config{
		Host: host, Port: p, User: user, Password: pass,
		Timeout: 10 * time.Second,
		Log:     t.Logf,
	}
}

func connect(t *testing.T, cfg ssh.Config) *ssh.Client {
	t.Helper()
	c, err := ssh.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnectSoonAfterReady(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{User: user, Password: pass, ReadyAfter: 1600 * time.Millisecond})
	cfg := config(t, srv)
	// Every not-ready attempt fails with EOF; none of them may count
	// against the one authentication failure allowed.
	cfg.HandshakeAttempts = 1
	var attempts atomic.Int32
	cfg.Alive = func() error { attempts.Add(1); return nil }
	c := connect(t, cfg)
	latency := time.Since(srv.ReadyAt())
	t.Logf("connected %s after the server became ready (%d attempts)", latency, attempts.Load())
	// Retries back off to at most 500ms, so by design the delay is under
	// 500ms plus one local handshake.
	if latency > 800*time.Millisecond {
		t.Errorf("connected %s after the server became ready, want < 800ms", latency)
	}
	if attempts.Load() < 2 {
		t.Errorf("made %d attempts; the not-ready phase was not exercised", attempts.Load())
	}
	if _, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// Before the guest's network is up, slirp's connections hang rather than
// close. Such attempts must be cut short and retried, not waited on with a
// growing deadline (which once cost ~4 s per build).
func TestConnectSoonAfterReadyWhenNotReadyHangs(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{User: user, Password: pass, ReadyAfter: 2500 * time.Millisecond, SilentUntilReady: true})
	c := connect(t, config(t, srv))
	latency := time.Since(srv.ReadyAt())
	t.Logf("connected %s after the server became ready", latency)
	if latency > 1500*time.Millisecond {
		t.Errorf("connected %s after the server became ready, want < 1.5s", latency)
	}
	c.Close()
}

func TestWrongPasswordFailsAfterHandshakeAttempts(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{User: user, Password: pass})
	cfg := config(t, srv)
	cfg.Password = "wrong"
	cfg.HandshakeAttempts = 3
	var attempts atomic.Int32
	cfg.Alive = func() error { attempts.Add(1); return nil }
	start := time.Now()
	_, err := ssh.Connect(context.Background(), cfg)
	if err == nil {
		t.Fatal("Connect succeeded with a wrong password")
	}
	for _, want := range []string{`authentication failed for user "kiln"`, "[password keyboard-interactive]", "3 attempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("made %d attempts, want 3", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s; auth failures should not wait for the timeout", d)
	}
}

func TestAliveErrorAbortsAtOnce(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass, ReadyAfter: time.Hour})
	cfg := config(t, srv)
	qemuDied := errors.New("QEMU exited: status 1: boom")
	var calls atomic.Int32
	cfg.Alive = func() error {
		if calls.Add(1) == 3 {
			return qemuDied
		}
		return nil
	}
	start := time.Now()
	_, err := ssh.Connect(context.Background(), cfg)
	if !errors.Is(err, qemuDied) {
		t.Fatalf("err = %v, want it to wrap %v", err, qemuDied)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s to notice the Alive error", d)
	}
}

func TestTimeoutError(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass, ReadyAfter: time.Hour})
	cfg := config(t, srv)
	cfg.Timeout = 600 * time.Millisecond
	start := time.Now()
	_, err := ssh.Connect(context.Background(), cfg)
	d := time.Since(start)
	if err == nil {
		t.Fatal("Connect succeeded against a server that never becomes ready")
	}
	t.Log(err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err does not wrap context.DeadlineExceeded: %v", err)
	}
	if !regexp.MustCompile(`after [0-9.]+m?s \(\d+ attempts`).MatchString(err.Error()) {
		t.Errorf("error does not say how long it waited: %v", err)
	}
	for _, want := range []string{"timeout waiting for SSH on " + srv.Addr, "last error: ", "ssh_username", "sshd", "serial console"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q: %v", want, err)
		}
	}
	if d < 600*time.Millisecond || d > 2*time.Second {
		t.Errorf("took %s, want about 600ms", d)
	}
}

func TestConnectHonoursContext(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass, ReadyAfter: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := ssh.Connect(ctx, config(t, srv))
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout waiting") {
		t.Fatalf("err = %v, want the context's error, not the ssh_timeout message", err)
	}
}

func TestRun(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{User: user, Password: pass})
	c := connect(t, config(t, srv))
	ctx := context.Background()

	var out, errOut bytes.Buffer
	status, err := c.Run(ctx, "echo out; echo err >&2; exit 3", nil, &out, &errOut)
	if err != nil || status != 3 {
		t.Fatalf("Run = %d, %v; want 3, nil", status, err)
	}
	if out.String() != "out\n" || errOut.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}

	out.Reset()
	status, err = c.Run(ctx, "tr a-z A-Z", strings.NewReader("hello"), &out, nil)
	if err != nil || status != 0 || out.String() != "HELLO" {
		t.Errorf("stdin: Run = %d, %v, %q", status, err, out.String())
	}

	// A killed command reports 128+signal, still not an error.
	status, err = c.Run(ctx, "kill -9 $$", nil, nil, nil)
	if err != nil || status != 137 {
		t.Errorf("killed: Run = %d, %v; want 137, nil", status, err)
	}
}

func TestRunContextCancel(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass})
	c := connect(t, config(t, srv))
	ctx, cancel := context.WithCancel(context.Background())
	started := newSignalWriter()
	go func() {
		<-started.first
		cancel()
	}()
	begin := time.Now()
	_, err := c.Run(ctx, "echo started; sleep 30", nil, started, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("cancel took %s", d)
	}
	// The connection is still usable.
	if status, err := c.Run(context.Background(), "exit 0", nil, nil, nil); err != nil || status != 0 {
		t.Errorf("Run after cancel = %d, %v", status, err)
	}
}

// signalWriter closes first on its first Write: a "the command is
// running now" event without polling.
type signalWriter struct {
	once  sync.Once
	first chan struct{}
}

func newSignalWriter() *signalWriter { return &signalWriter{first: make(chan struct{})} }

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.first) })
	return len(p), nil
}

func TestDisconnectThenReconnect(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass})
	c := connect(t, config(t, srv))
	started := newSignalWriter()
	go func() {
		<-started.first
		srv.DropConnections()
	}()
	begin := time.Now()
	_, err := c.Run(context.Background(), "echo started; sleep 30", nil, started, nil)
	if !errors.Is(err, ssh.ErrDisconnected) {
		t.Fatalf("err = %v, want ErrDisconnected", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("noticing the drop took %s", d)
	}
	var out bytes.Buffer
	status, err := c.Run(context.Background(), "echo again", nil, &out, nil)
	if err != nil || status != 0 || out.String() != "again\n" {
		t.Fatalf("Run after reconnect = %d, %v, %q", status, err, out.String())
	}
}

func TestDisconnectBetweenCommands(t *testing.T) {
	// A reboot after a command returned: the next call must notice the
	// dead connection and reconnect rather than fail.
	srv := sshtest.Start(t, sshtest.Options{Password: pass})
	c := connect(t, config(t, srv))
	srv.DropConnections()
	if status, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil || status != 0 {
		t.Fatalf("Run = %d, %v", status, err)
	}
	srv.DropConnections()
	if err := c.Upload(context.Background(), "f", strings.NewReader("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAliveDetectsHungGuest(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass})
	cfg := config(t, srv)
	cfg.KeepAlive = 100 * time.Millisecond
	c := connect(t, cfg)
	started := newSignalWriter()
	go func() {
		<-started.first
		srv.Hang()
	}()
	begin := time.Now()
	_, err := c.Run(context.Background(), "echo started; sleep 30", nil, started, nil)
	if !errors.Is(err, ssh.ErrDisconnected) {
		t.Fatalf("err = %v, want ErrDisconnected", err)
	}
	// It says kiln gave up on a silent guest, not that sshd went away.
	if !strings.Contains(err.Error(), "no keepalive reply for 300ms") {
		t.Errorf("err = %v, want it to name the missing keepalive replies", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("noticing the hang took %s, want about 3 keepalive intervals", d)
	}
	if _, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run after hang: %v", err)
	}
}

func TestTransferAfterHang(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass})
	cfg := config(t, srv)
	cfg.KeepAlive = 100 * time.Millisecond
	c := connect(t, cfg)
	ctx := context.Background()
	if err := c.Upload(ctx, "f", strings.NewReader("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The SFTP session is open when the guest hangs: the next transfer
	// fails as a disconnect once keepalives notice...
	srv.Hang()
	err := c.Upload(ctx, "f", strings.NewReader("2"), 0o644)
	if !errors.Is(err, ssh.ErrDisconnected) {
		t.Fatalf("Upload to a hung guest: %v", err)
	}
	// ...and the one after reconnects.
	var buf bytes.Buffer
	if err := c.Download(ctx, "f", &buf); err != nil || buf.String() != "1" {
		t.Fatalf("Download after reconnect = %q, %v", buf.String(), err)
	}
}

func TestSFTPStartOnHungGuest(t *testing.T) {
	// No SFTP session yet when the guest hangs: starting one blocks until
	// keepalives close the connection, and then Upload reconnects.
	srv := sshtest.Start(t, sshtest.Options{Password: pass})
	cfg := config(t, srv)
	cfg.KeepAlive = 100 * time.Millisecond
	c := connect(t, cfg)
	srv.Hang()
	if err := c.Upload(context.Background(), "f", strings.NewReader("x"), 0o644); err != nil {
		t.Fatalf("Upload: %v", err)
	}
}

func TestUploadDownload(t *testing.T) {
	dir := t.TempDir()
	srv := sshtest.Start(t, sshtest.Options{Password: pass, Dir: dir})
	c := connect(t, config(t, srv))
	ctx := context.Background()

	content := strings.Repeat("kiln ", 100000)
	// Relative to the server's directory, with parents to create.
	if err := c.Upload(ctx, "sub/dir/file.txt", strings.NewReader(content), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "sub/dir/file.txt"))
	if err != nil || string(got) != content {
		t.Fatalf("uploaded file: %d bytes, err %v", len(got), err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "sub/dir/file.txt")); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	// Overwrite with shorter content truncates.
	if err := c.Upload(ctx, filepath.Join(dir, "sub/dir/file.txt"), strings.NewReader("short"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.Download(ctx, "sub/dir/file.txt", &buf); err != nil || buf.String() != "short" {
		t.Fatalf("Download = %q, %v", buf.String(), err)
	}
	err = c.Download(ctx, "missing", &buf)
	if err == nil || errors.Is(err, ssh.ErrDisconnected) || !strings.Contains(err.Error(), "downloading missing") {
		t.Errorf("Download of a missing file: %v", err)
	}
}

func TestUploadDirTrailingSlash(t *testing.T) {
	remote := t.TempDir()
	srv := sshtest.Start(t, sshtest.Options{Password: pass, Dir: remote})
	c := connect(t, config(t, srv))
	ctx := context.Background()

	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src)

	if err := c.UploadDir(ctx, "with", src); err != nil {
		t.Fatal(err)
	}
	checkTree(t, filepath.Join(remote, "with", "src"))
	if err := c.UploadDir(ctx, "without", src+"/"); err != nil {
		t.Fatal(err)
	}
	checkTree(t, filepath.Join(remote, "without"))
	if _, err := os.Stat(filepath.Join(remote, "without", "src")); !os.IsNotExist(err) {
		t.Errorf("src/ created the src directory itself: %v", err)
	}

	local := t.TempDir()
	if err := c.DownloadDir(ctx, filepath.Join(remote, "without"), local); err != nil {
		t.Fatal(err)
	}
	checkTree(t, filepath.Join(local, "without"))
	local2 := t.TempDir()
	if err := c.DownloadDir(ctx, filepath.Join(remote, "without")+"/", local2); err != nil {
		t.Fatal(err)
	}
	checkTree(t, local2)
}

func writeTree(t *testing.T, root string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(root, "nested"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "a.txt"), []byte("A"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "nested", "b.sh"), []byte("B"), 0o755))
	must(t, os.Symlink("a.txt", filepath.Join(root, "link")))
}

func checkTree(t *testing.T, root string) {
	t.Helper()
	for name, want := range map[string]string{"a.txt": "A", "nested/b.sh": "B"} {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || string(got) != want {
			t.Errorf("%s/%s = %q, %v; want %q", root, name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "nested", "b.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("nested/b.sh mode lost: %v %v", fi, err)
	}
	// The symlink's target is sent as "a.txt", but pkg/sftp's server (in
	// sshtest) makes relative targets absolute, so check the name only.
	if l, err := os.Readlink(filepath.Join(root, "link")); err != nil || filepath.Base(l) != "a.txt" {
		t.Errorf("link = %q, %v", l, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestGenerateKeyAuthenticates(t *testing.T) {
	priv, pub, err := ssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub, "ssh-ed25519 AAAA") || !strings.HasSuffix(pub, " kiln") {
		t.Errorf("authorized key line = %q", pub)
	}
	if !bytes.HasPrefix(priv, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("private key is not OpenSSH PEM: %.40q", priv)
	}
	srv := sshtest.Start(t, sshtest.Options{User: user, AuthorizedKey: pub})
	cfg := config(t, srv)
	cfg.Password = ""
	cfg.PrivateKey = priv
	c := connect(t, cfg)
	if status, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil || status != 0 {
		t.Fatalf("Run = %d, %v", status, err)
	}

	// A different key is refused.
	other, _, err := ssh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg.PrivateKey = other
	cfg.HandshakeAttempts = 1
	if _, err := ssh.Connect(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "[publickey]") {
		t.Errorf("Connect with another key: %v", err)
	}
}

func TestClosed(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: pass})
	c := connect(t, config(t, srv))
	c.Close()
	if _, err := c.Run(context.Background(), "true", nil, nil, nil); !errors.Is(err, ssh.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}
