package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyMarker is what the test guest prints on its serial console once
// sshd listens (testdata/guest/build.sh).
const readyMarker = "kiln-guest: sshd ready"

// guestTimeout bounds one direct boot, from QEMU start to QEMU exit.
const guestTimeout = 5 * time.Minute

// guestSample is one direct boot of the guest, without kiln.
type guestSample struct {
	Boot     time.Duration // QEMU start → readyMarker on the serial console
	Login    time.Duration // readyMarker → first SSH command done (handshake, auth, `true`)
	Poweroff time.Duration // `poweroff` sent over that SSH connection → QEMU exit
}

// errPortTaken means QEMU could not bind the SSH forward: another process
// took the port between our probe and QEMU's bind. The boot is retried.
var errPortTaken = errors.New("SSH forward port taken")

// guest boots a copy of the guest disk with QEMU directly and times it.
func (b *bench) guest(ctx context.Context, i int) (guestSample, error) {
	dir := filepath.Join(b.tmp, fmt.Sprintf("guest-%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return guestSample{}, err
	}
	disk := filepath.Join(dir, "disk.qcow2")
	if err := copyFile(filepath.Join(b.guestDir, "guest.qcow2"), disk, 0o644); err != nil {
		return guestSample{}, fmt.Errorf("copying the guest disk: %w", err)
	}
	for attempt := 1; ; attempt++ {
		s, err := b.bootOnce(ctx, dir, disk)
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		return s, err
	}
}

// qemuArgs is kiln's command line for the example template (see the
// "qemu command line" entry of its debug log) with the SSH forward given
// on the command line and the serial console on stdout.
func qemuArgs(disk string, port int) []string {
	return []string{
		"-machine", "type=pc,accel=tcg", "-m", "256M", "-cpu", "max", "-boot", "c",
		"-drive", "file=" + disk + ",if=virtio,cache=writeback,discard=ignore,format=qcow2",
		"-device", "virtio-net,netdev=user.0",
		"-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:" + strconv.Itoa(port) + "-:22",
		"-serial", "stdio", "-monitor", "none", "-display", "none",
	}
}

func (b *bench) bootOnce(ctx context.Context, dir, disk string) (guestSample, error) {
	port, err := freePort()
	if err != nil {
		return guestSample{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, guestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", qemuArgs(disk, port)...)
	serial := newMarkerWriter(readyMarker)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = serial, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return guestSample{}, fmt.Errorf("starting qemu-system-x86_64: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	var exitAt time.Time
	go func() {
		waitErr = cmd.Wait()
		exitAt = time.Now()
		close(exited)
	}()
	// Whatever happens below, QEMU does not outlive this function.
	defer func() {
		cmd.Process.Kill() // a no-op error once it has exited
		<-exited
	}()
	died := func(when string) error {
		if strings.Contains(stderr.String(), "forwarding") {
			return errPortTaken
		}
		return fmt.Errorf("QEMU exited %s: %v\n%s\nserial console (end):\n%s", when, waitErr, stderr.String(), serial.Tail())
	}

	var s guestSample
	select {
	case at := <-serial.Found():
		s.Boot = at.Sub(start)
	case <-exited:
		return s, died("before the guest was ready")
	case <-ctx.Done():
		return s, fmt.Errorf("waiting for %q on the serial console: %w\nserial console (end):\n%s", readyMarker, context.Cause(ctx), serial.Tail())
	}
	ready := time.Now()

	ssh := sshClient{key: b.key, port: port, control: filepath.Join(dir, "ssh.ctl"), log: filepath.Join(dir, "ssh.log")}
	defer ssh.close()
	if err := ssh.open(ctx); err != nil {
		return s, err
	}
	s.Login = time.Since(ready)

	sent := time.Now()
	// The connection drops as the guest goes down, so ssh may fail here;
	// QEMU's exit is what counts.
	ssh.run(ctx, "poweroff")
	select {
	case <-exited:
		s.Poweroff = exitAt.Sub(sent)
		if waitErr != nil {
			return s, fmt.Errorf("QEMU exited with %v after poweroff:\n%s", waitErr, stderr.String())
		}
		return s, nil
	case <-ctx.Done():
		return s, fmt.Errorf("waiting for QEMU to exit after poweroff: %w\nserial console (end):\n%s", context.Cause(ctx), serial.Tail())
	}
}

// sshClient runs commands in the guest with the system ssh over one
// multiplexed connection, as kiln keeps one connection for provisioning
// and shutdown: the poweroff timing then holds no second handshake.
type sshClient struct {
	key, control, log string
	port              int
}

func (c sshClient) args(extra ...string) []string {
	args := []string{"-F", "/dev/null", "-i", c.key, "-p", strconv.Itoa(c.port),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=20", "-o", "ControlPath=" + c.control}
	return append(append(args, extra...), "root@127.0.0.1")
}

// open logs in and runs `true`, leaving a master connection for run. The
// guest printed its marker once sshd listens, so the first attempt should
// succeed; a few retries cover a slow guest network.
func (c sshClient) open(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = c.exec(ctx, c.args("-o", "ControlMaster=yes", "-o", "ControlPersist=yes"), "true"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(c.log)
	return fmt.Errorf("ssh to the guest: %w\n%s", err, b)
}

func (c sshClient) run(ctx context.Context, command string) error {
	return c.exec(ctx, c.args(), command)
}

// close ends the master connection if the guest has not already.
func (c sshClient) close() {
	exec.Command("ssh", c.args("-O", "exit")...).Run()
}

func (c sshClient) exec(ctx context.Context, args []string, command string) error {
	// A file, not a buffer: the backgrounded master keeps ssh's output
	// open, and Wait would wait for it to close.
	log, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, "ssh", append(args, command)...)
	cmd.Stdout, cmd.Stderr = log, log
	return cmd.Run()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// markerWriter receives the serial console, notes when a line containing
// the marker arrives and keeps the end of the output for error messages.
type markerWriter struct {
	marker string
	found  chan time.Time

	mu   sync.Mutex
	line []byte // the current, unfinished line
	tail []byte
	seen bool
}

const tailSize = 4096

func newMarkerWriter(marker string) *markerWriter {
	return &markerWriter{marker: marker, found: make(chan time.Time, 1)}
}

// Found delivers the time the marker's line was complete.
func (w *markerWriter) Found() <-chan time.Time { return w.found }

func (w *markerWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail = append(w.tail, p...)
	if len(w.tail) > tailSize {
		w.tail = w.tail[len(w.tail)-tailSize:]
	}
	if w.seen {
		return len(p), nil
	}
	for _, c := range p {
		if c != '\n' {
			if len(w.line) < 1024 {
				w.line = append(w.line, c)
			}
			continue
		}
		if strings.Contains(string(w.line), w.marker) {
			w.seen = true
			w.found <- now
			break
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

// Tail is the last few KiB the guest printed.
func (w *markerWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.tail)
}
