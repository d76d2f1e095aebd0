package qmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/internal/testutil"
)

func TestRealQEMU(t *testing.T) {
	bin := testutil.Tool(t, "qemu-system-x86_64")
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-accel", "tcg", "-S", "-display", "none", "-nodefaults",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, sock, Options{})
	if err != nil {
		t.Fatalf("Dial: %v (stderr: %s)", err, stderr.String())
	}
	defer c.Close()
	t.Logf("QEMU %s: start to QMP connected in %v", c.Version(), time.Since(start))

	var status struct{ Status string }
	if err := c.Execute(ctx, "query-status", nil, &status); err != nil {
		t.Fatal(err)
	}
	if status.Status != "prelaunch" {
		t.Errorf("status %q, want prelaunch (started with -S)", status.Status)
	}

	var schema []json.RawMessage
	if err := c.Execute(ctx, "query-qmp-schema", nil, &schema); err != nil {
		t.Fatalf("query-qmp-schema: %v", err)
	}
	size := 0
	for _, e := range schema {
		size += len(e)
	}
	if size < 64<<10 {
		t.Errorf("schema only %d bytes; the test is meant to exceed 64 KiB", size)
	}
	t.Logf("query-qmp-schema: %d entries, %d bytes", len(schema), size)

	err = c.Execute(ctx, "no-such-command", nil, nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command = %v, want CommandNotFound", err)
	}

	events, cancelSub := c.Subscribe(16)
	defer cancelSub()
	if err := c.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitFor(ctx, events, "RESUME"); err != nil {
		t.Fatal(err)
	}
	// QEMU sends SHUTDOWN, maybe the reply, then closes the socket: the
	// reply may be lost, so an ErrClosed from quit is fine.
	if err := c.Execute(ctx, "quit", nil, nil); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("quit: %v", err)
	}
	ev, err := WaitFor(ctx, events, "SHUTDOWN")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ev.Data, []byte("host-qmp-quit")) {
		t.Errorf("SHUTDOWN data %s", ev.Data)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after quit")
	}
	if err := <-exited; err != nil {
		t.Errorf("qemu exit: %v (stderr: %s)", err, stderr.String())
	}
	exited <- nil // for the cleanup
}
