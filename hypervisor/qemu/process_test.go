package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
	"github.com/kilnbuild/kiln/internal/testutil"
)

func TestTailBufferKeepsLastBytes(t *testing.T) {
	tb := &tailBuffer{max: 8}
	tb.Write([]byte("0123456789"))
	tb.Write([]byte("ab"))
	if got := tb.String(); got != "456789ab" {
		t.Errorf("tail = %q, want %q", got, "456789ab")
	}
	tb = &tailBuffer{max: 8}
	tb.Write([]byte("first line\nlast\n"))
	if got := tb.String(); got != "last\n" {
		t.Errorf("tail = %q, want the cut first line dropped", got)
	}
}

func TestExitErrorMessage(t *testing.T) {
	e := &ExitError{Code: 1, Stderr: "qemu-system-x86_64: -drive file=x: Could not open 'x'"}
	if got, want := e.Error(), "qemu exited with status 1: qemu-system-x86_64: -drive file=x: Could not open 'x'"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	k := &ExitError{Code: -1, Signal: syscall.SIGKILL}
	if got := k.Error(); got != "qemu killed by signal 9 (killed)" {
		t.Errorf("got %q", got)
	}
}

func TestStartBadDriveReportsStderr(t *testing.T) {
	bin := testutil.Tool(t, "qemu-system-x86_64")
	dir := shortTempDir(t)
	missing := filepath.Join(dir, "missing.qcow2")
	s := base(dir)
	s.Binary = bin
	s.Drives = []Drive{{Path: missing, Format: "qcow2", Interface: "virtio"}}
	argv, err := Args(s)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), argv, StartOptions{})
	if err != nil {
		t.Fatalf("Start: %v (a bad -drive must fail in QEMU, not in Start)", err)
	}
	defer p.Kill()
	select {
	case <-p.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("QEMU with a missing disk still running after 2s")
	}
	err = p.ExitError()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("ExitError = %v, want status 1", err)
	}
	if !strings.Contains(err.Error(), "qemu exited with status 1: ") || !strings.Contains(err.Error(), missing) ||
		!strings.Contains(err.Error(), "No such file") {
		t.Errorf("ExitError lacks QEMU's message: %v", err)
	}
	t.Log(err)
	if p.Wait(context.Background()) == nil {
		t.Error("Wait = nil for a failed QEMU")
	}
}

func TestCancelDoesNotKillButKillDoes(t *testing.T) {
	bin := testutil.Tool(t, "qemu-system-x86_64")
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "qmp.sock")
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, []string{bin, "-accel", "tcg", "-S", "-display", "none", "-nodefaults",
		"-qmp", "unix:" + sock + ",server=on,wait=off"}, StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	cancel()

	// Still alive and answering after its start ctx is gone.
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	c, err := qmp.Dial(dctx, sock, qmp.Options{})
	if err != nil {
		p.Kill()
		t.Fatalf("QEMU gone after ctx cancel: %v / %v", err, p.ExitError())
	}
	defer c.Close()
	if err := c.Execute(dctx, "query-status", nil, nil); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	if err := p.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a running QEMU = %v, want deadline exceeded", err)
	}

	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("QEMU not dead 5s after Kill")
	}
	var ee *ExitError
	if !errors.As(p.ExitError(), &ee) || ee.Signal != syscall.SIGKILL {
		t.Errorf("ExitError = %v, want killed by SIGKILL", p.ExitError())
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("/proc/%d still exists after Kill and Done (err %v)", pid, err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("QMP client not closed after QEMU died")
	}
}

func TestStartRejectsCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, []string{"/bin/true"}, StartOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with cancelled ctx = %v", err)
	}
}
