package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StartOptions tune Start.
type StartOptions struct {
	// Stderr, if set, also receives everything QEMU writes to stderr (a
	// tee: the last 8 KiB are kept for ExitError regardless).
	Stderr io.Writer
	// Stdout, if set, receives QEMU's stdout; otherwise it is discarded.
	// (QEMU prints nothing there unless qemuargs say e.g. -serial stdio.)
	Stdout io.Writer
	// Log, if set, gets slog-style messages: Log(msg, key, value, ...).
	Log func(msg string, args ...any)
}

// Process is a running QEMU.
type Process struct {
	cmd  *exec.Cmd
	tail *tailBuffer
	log  func(string, ...any)

	done    chan struct{}
	exitErr error // set before done is closed
}

// stderrTail is how much of QEMU's stderr ExitError quotes.
const stderrTail = 8 << 10

// Start runs argv (argv[0] is the QEMU binary) and returns once the
// process exists; it does not wait for QEMU to be ready (dial its QMP
// socket for that).
//
// ctx only guards the start itself. Cancelling it later does NOT kill
// QEMU: the guest disk may be mid-write, and whoever started QEMU decides
// how to stop it (the pipeline's undo step: QMP quit, then Kill, bounded).
// QEMU runs in its own process group, so a terminal's Ctrl-C reaches kiln
// and not QEMU directly, and it gets SIGKILL if kiln dies (Pdeathsig), so
// it never outlives kiln. Pdeathsig fires when the OS thread that started
// QEMU exits; Go only ends threads of goroutines that exit while locked
// with runtime.LockOSThread, so do not call Start from such a goroutine.
func Start(ctx context.Context, argv []string, opts StartOptions) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("starting qemu: empty command line")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	p := &Process{
		tail: &tailBuffer{max: stderrTail},
		log:  opts.Log,
		done: make(chan struct{}),
	}
	if p.log == nil {
		p.log = func(string, ...any) {}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout = opts.Stdout
	if opts.Stderr != nil {
		cmd.Stderr = io.MultiWriter(p.tail, opts.Stderr)
	} else {
		cmd.Stderr = p.tail
	}
	// Wait also waits for the stderr copy; a helper QEMU spawned that
	// keeps stderr open must not keep Wait (and Done) from returning.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	p.cmd = cmd
	p.log("qemu started", "pid", cmd.Process.Pid, "argv", strings.Join(argv, " "))
	go p.wait()
	return p, nil
}

func (p *Process) wait() {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		e := &ExitError{Code: ee.ExitCode(), Stderr: strings.TrimSpace(p.tail.String())}
		if ws.Signaled() {
			e.Signal = ws.Signal()
		}
		err = e
	case errors.Is(err, exec.ErrWaitDelay):
		// QEMU exited 0 but a child held stderr open; not a failure.
		err = nil
	default:
		err = fmt.Errorf("waiting for qemu: %w", err)
	}
	p.exitErr = err
	p.log("qemu exited", "pid", p.cmd.Process.Pid, "err", err)
	close(p.done)
}

// Pid is QEMU's process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when QEMU has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitError returns, after Done is closed, nil if QEMU exited with status
// 0 and otherwise an *ExitError quoting the tail of QEMU's stderr. Before
// Done it returns nil.
func (p *Process) ExitError() error {
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// Wait waits until QEMU exits, then returns ExitError(); or returns ctx's
// error if ctx ends first (QEMU keeps running).
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.exitErr
	case <-ctx.Done():
		return fmt.Errorf("waiting for qemu (pid %d): %w", p.Pid(), ctx.Err())
	}
}

// Kill sends SIGKILL to QEMU's process group. It does not wait; use Done
// or Wait. Killing a process that has already exited is not an error.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	// QEMU itself first, through os.Process, which knows when the process
	// has been reaped (so a recycled pid is never hit).
	err := p.cmd.Process.Signal(syscall.SIGKILL)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("killing qemu (pid %d): %w", p.Pid(), err)
	}
	// Then the rest of its process group (helpers QEMU may have spawned).
	// QEMU was alive an instant ago, so the group id is still its own.
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing qemu's process group (pid %d): %w", p.Pid(), err)
	}
	return nil
}

// ExitError is how QEMU ended when it did not exit with status 0.
type ExitError struct {
	Code   int            // exit status, -1 if killed by a signal
	Signal syscall.Signal // the signal that killed it, or 0
	Stderr string         // last ~8 KiB of QEMU's stderr, trimmed
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != 0 {
		fmt.Fprintf(&b, "qemu killed by signal %d (%v)", int(e.Signal), e.Signal)
	} else {
		fmt.Fprintf(&b, "qemu exited with status %d", e.Code)
	}
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	return len(p), nil
}

// String returns the tail; once bytes were dropped it starts at a line
// boundary, so an error message never opens with half a line.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if i := bytes.IndexByte(b, '\n'); t.dropped && i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}
