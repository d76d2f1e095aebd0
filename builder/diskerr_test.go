package builder

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
)

// TestWatchDiskErrors: QEMU's BLOCK_IO_ERROR with action "stop" (the VM
// is paused) cancels the build with a cause that says the host disk is
// full; an error the guest merely sees (action "report") does not.
func TestWatchDiskErrors(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	st := &State{WorkDir: "/srv/out/.kiln-out-123", cancel: cancel}
	events := make(chan qmp.Event, 4)
	ev := func(data string) qmp.Event { return qmp.Event{Name: "BLOCK_IO_ERROR", Data: json.RawMessage(data)} }
	events <- qmp.Event{Name: "RESUME"}
	events <- ev(`{"device":"virtio1","node-name":"n1","operation":"read","action":"report","nospace":false,"reason":"Input/output error"}`)
	done := make(chan struct{})
	go func() {
		st.watchDiskErrors(events)
		close(done)
	}()
	select {
	case <-ctx.Done():
		t.Fatalf("build cancelled on a reported (not stopping) error: %v", context.Cause(ctx))
	case <-time.After(100 * time.Millisecond):
	}

	events <- ev(`{"device":"virtio0","node-name":"n0","operation":"write","action":"stop","nospace":true,"reason":"No space left on device"}`)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("build not cancelled after QEMU stopped the VM on ENOSPC")
	}
	<-done // it returns after cancelling
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrVMDiskError) {
		t.Errorf("cause %v does not wrap ErrVMDiskError", cause)
	}
	for _, want := range []string{"write error on virtio0", "No space left on device", st.WorkDir, "is full"} {
		if !strings.Contains(cause.Error(), want) {
			t.Errorf("cause %q lacks %q", cause, want)
		}
	}
}

// TestWatchDiskErrorsEndsWithQMP: the watcher returns when the QMP
// connection closes its event channel, cancelling nothing.
func TestWatchDiskErrorsEndsWithQMP(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	st := &State{cancel: cancel}
	events := make(chan qmp.Event)
	close(events)
	st.watchDiskErrors(events)
	if ctx.Err() != nil {
		t.Errorf("cancelled: %v", context.Cause(ctx))
	}
}
