package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/internal/testutil"
	"github.com/kilnbuild/kiln/provision/ssh"
	"github.com/kilnbuild/kiln/provision/ssh/sshtest"
)

type harness struct {
	env    Env
	srv    *sshtest.Server
	remote string // the "guest's" working directory
	stdout *testutil.Buffer
	said   *testutil.Buffer
}

// newHarness connects to an sshtest server whose commands run in a
// temporary "remote" directory.
func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{remote: t.TempDir(), stdout: &testutil.Buffer{}, said: &testutil.Buffer{}}
	h.srv = sshtest.Start(t, sshtest.Options{Password: "pw", Dir: h.remote})
	host, port, _ := net.SplitHostPort(h.srv.Addr)
	p, _ := strconv.Atoi(port)
	c, err := ssh.Connect(context.Background(), ssh.Config{Host: host, Port: p, User: "kiln", Password: "pw", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.env = Env{
		BuildName: "qemu.test", BuilderType: "qemu",
		HTTPIP: "10.0.2.2", HTTPPort: 8123,
		Comm:   c,
		Say:    func(f string, a ...any) { fmt.Fprintf(h.said, f+"\n", a...) },
		Stdout: h.stdout,
		Stderr: h.stdout,
		Dir:    t.TempDir(),
	}
	return h
}

func shell(s config.Shell) *config.Provisioner {
	return &config.Provisioner{Type: "shell", Shell: &s}
}

func TestShellEnvironment(t *testing.T) {
	h := newHarness(t)
	p := shell(config.Shell{
		Inline: []string{
			`echo "FOO=$FOO"`,
			`echo "QUOTE=$QUOTE"`,
			`echo "$PACKER_BUILD_NAME $PACKER_BUILDER_TYPE $PACKER_HTTP_IP $PACKER_HTTP_PORT $PACKER_HTTP_ADDR"`,
		},
		EnvironmentVars: []string{"FOO=from-vars", `QUOTE=it's "$HOME" ` + "`x`"},
		Env:             map[string]string{"FOO": "from-env"},
		RemoteFolder:    h.remote,
		RemoteFile:      "env.sh",
	})
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatal(err)
	}
	want := "FOO=from-env\n" +
		`QUOTE=it's "$HOME" ` + "`x`\n" +
		"qemu.test qemu 10.0.2.2 8123 10.0.2.2:8123\n"
	if got := h.stdout.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(h.said.String(), "Provisioning with shell script: inline") {
		t.Errorf("said %q", h.said.String())
	}
	// The script was removed afterwards.
	if _, err := os.Stat(filepath.Join(h.remote, "env.sh")); !os.IsNotExist(err) {
		t.Errorf("script left behind: %v", err)
	}
}

func TestFlattenEnvOmitsHTTPWithoutServer(t *testing.T) {
	got, err := flattenEnv(Env{BuildName: "b", BuilderType: "qemu"}, []string{"A=1=2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "A='1=2' PACKER_BUILDER_TYPE='qemu' PACKER_BUILD_NAME='b' "; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := flattenEnv(Env{}, []string{"NOEQUALS"}, nil); err == nil {
		t.Error("accepted an environment_vars entry without '='")
	}
}

func TestShellExecuteCommandAndSkipClean(t *testing.T) {
	h := newHarness(t)
	p := shell(config.Shell{
		Inline:         []string{"echo body"},
		ExecuteCommand: "echo path={{.Path}}; {{.Vars}} sh {{.Path}}",
		RemotePath:     filepath.Join(h.remote, "custom.sh"),
		SkipClean:      true,
	})
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatal(err)
	}
	want := "path=" + filepath.Join(h.remote, "custom.sh") + "\nbody\n"
	if got := h.stdout.String(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	body, err := os.ReadFile(filepath.Join(h.remote, "custom.sh"))
	if err != nil {
		t.Fatalf("skip_clean: script removed: %v", err)
	}
	if string(body) != "#!/bin/sh -e\necho body\n" {
		t.Errorf("script body %q", body)
	}
}

func TestShellDefaultRemotePath(t *testing.T) {
	h := newHarness(t)
	p := shell(config.Shell{Inline: []string{"true"}, ExecuteCommand: "echo {{.Path}}"})
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(h.stdout.String()); !regexp.MustCompile(`^/tmp/script_\d{1,4}\.sh$`).MatchString(got) {
		t.Errorf("default remote path %q, want /tmp/script_NNNN.sh", got)
	}
}

func TestShellScripts(t *testing.T) {
	h := newHarness(t)
	// Relative to env.Dir; CRLF line ends are converted.
	os.WriteFile(filepath.Join(h.env.Dir, "one.sh"), []byte("#!/bin/sh\r\necho one\r\n"), 0o644)
	os.WriteFile(filepath.Join(h.env.Dir, "two.sh"), []byte("#!/bin/sh\necho two\n"), 0o644)
	p := shell(config.Shell{Scripts: []string{"one.sh", "two.sh"}, RemoteFolder: h.remote})
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatal(err)
	}
	if got := h.stdout.String(); got != "one\ntwo\n" {
		t.Errorf("output %q", got)
	}
	said := h.said.String()
	if !strings.Contains(said, "shell script: one.sh") || !strings.Contains(said, "shell script: two.sh") {
		t.Errorf("said %q", said)
	}
}

func TestShellValidExitCodes(t *testing.T) {
	h := newHarness(t)
	p := shell(config.Shell{Inline: []string{"exit 3"}, RemoteFolder: h.remote})
	err := Run(context.Background(), p, h.env)
	if err == nil || !strings.Contains(err.Error(), "script inline exited with code 3") {
		t.Fatalf("err = %v", err)
	}
	p.Shell.ValidExitCodes = []int{0, 3}
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatalf("exit 3 with valid_exit_codes [0 3]: %v", err)
	}
}

// rebootingScript returns a script that signals the test through a FIFO
// and then runs for a long time, and starts a goroutine that drops the
// server's connections (a "reboot") once signalled.
func rebootingScript(t *testing.T, h *harness) []string {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR so opening does not wait for the writer.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	go func() {
		var b [1]byte
		if n, _ := f.Read(b[:]); n == 1 {
			h.srv.DropConnections()
		}
	}()
	return []string{"echo x > " + fifo, "sleep 30"}
}

func TestShellExpectDisconnect(t *testing.T) {
	h := newHarness(t)
	p := shell(config.Shell{Inline: rebootingScript(t, h), RemoteFolder: h.remote, RemoteFile: "reboot.sh", ExpectDisconnect: true})
	start := time.Now()
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatalf("expect_disconnect = true: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
	// The cleanup ran over a new connection.
	if _, err := os.Stat(filepath.Join(h.remote, "reboot.sh")); !os.IsNotExist(err) {
		t.Errorf("script not removed after the reconnect: %v", err)
	}

	p = shell(config.Shell{Inline: rebootingScript(t, h), RemoteFolder: h.remote})
	err := Run(context.Background(), p, h.env)
	if err == nil || !strings.Contains(err.Error(), "set expect_disconnect = true if that is expected") {
		t.Fatalf("expect_disconnect = false: err = %v", err)
	}
	// The error says it was the connection, and callers can tell.
	if !errors.Is(err, ssh.ErrDisconnected) || !strings.Contains(err.Error(), "connection to the guest lost") {
		t.Errorf("expect_disconnect = false: err = %v, want it to wrap ssh.ErrDisconnected", err)
	}
}

func TestMaxRetries(t *testing.T) {
	old := retryDelay
	retryDelay = 10 * time.Millisecond
	t.Cleanup(func() { retryDelay = old })

	h := newHarness(t)
	flaky := func() []string {
		marker := filepath.Join(t.TempDir(), "marker")
		return []string{"if [ -e " + marker + " ]; then exit 0; fi", "touch " + marker, "exit 1"}
	}
	p := shell(config.Shell{Inline: flaky(), RemoteFolder: h.remote})
	if err := Run(context.Background(), p, h.env); err == nil {
		t.Fatal("failing script succeeded without max_retries")
	}
	p = shell(config.Shell{Inline: flaky(), RemoteFolder: h.remote})
	p.MaxRetries = 1
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatalf("max_retries = 1: %v", err)
	}
	if !strings.Contains(h.said.String(), "retrying (attempt 2 of 2)") {
		t.Errorf("said %q", h.said.String())
	}
}

func TestTimeout(t *testing.T) {
	h := newHarness(t)
	p := shell(config.Shell{Inline: []string{"sleep 30"}, RemoteFolder: h.remote})
	p.Timeout = 300 * time.Millisecond
	start := time.Now()
	err := Run(context.Background(), p, h.env)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestPauseBefore(t *testing.T) {
	h := newHarness(t)
	p := shell(config.Shell{Inline: []string{"echo ran"}, RemoteFolder: h.remote})
	p.PauseBefore = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := Run(ctx, p, h.env); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("pause ignored ctx for %s", d)
	}
	if h.stdout.String() != "" {
		t.Error("the script ran despite the cancelled pause")
	}

	p.PauseBefore = 100 * time.Millisecond
	start = time.Now()
	if err := Run(context.Background(), p, h.env); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("paused only %s", d)
	}
}

func TestNoCommunicator(t *testing.T) {
	err := Run(context.Background(), shell(config.Shell{Inline: []string{"true"}}), Env{})
	if err == nil || !strings.Contains(err.Error(), `communicator = "none"`) {
		t.Errorf("err = %v", err)
	}
}
