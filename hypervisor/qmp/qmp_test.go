package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// standard answers the commands most tests use.
func standard(c *fakeConn, req fakeReq) {
	switch req.Execute {
	case "echo":
		c.reply(req, req.Arguments)
	case "fail":
		c.replyError(req, "DeviceNotFound", "Device 'nope' not found")
	case "big":
		// 300 KiB in one line, far over go-qemu's 64 KiB scanner limit.
		c.reply(req, map[string]string{"blob": strings.Repeat("x", 300<<10)})
	case "hang":
		// never answers
	case "die":
		c.conn.Close()
	case "cont":
		c.event("RESUME", nil)
		c.reply(req, struct{}{})
	case "quit":
		c.event("SHUTDOWN", map[string]any{"guest": false, "reason": "host-qmp-quit"})
		c.reply(req, struct{}{})
		c.conn.Close()
	default:
		c.replyError(req, "CommandNotFound", fmt.Sprintf("The command %s has not been found", req.Execute))
	}
}

func dialFake(t *testing.T, s *fakeServer, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.path, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestDialNegotiatesAndLogs(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	var mu sync.Mutex
	var log []string
	c := dialFake(t, s, Options{Log: func(dir string, msg []byte) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, dir+" "+string(msg))
	}})
	if got := c.Version(); got != "7.2.22" {
		t.Errorf("Version() = %q, want 7.2.22", got)
	}
	// The fake refuses commands before qmp_capabilities, so this only
	// succeeds if Dial negotiated.
	var out map[string]int
	if err := c.Execute(ctxT(t, 5*time.Second), "echo", map[string]int{"a": 1}, &out); err != nil {
		t.Fatalf("echo: %v", err)
	}
	if out["a"] != 1 {
		t.Errorf("echo returned %v", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != 5 ||
		!strings.HasPrefix(log[0], `<- {"QMP"`) ||
		!strings.HasPrefix(log[1], `-> {"execute":"qmp_capabilities"`) ||
		!strings.HasPrefix(log[3], `-> {"execute":"echo","arguments":{"a":1},"id":`) {
		t.Errorf("log = %q", log)
	}
}

func TestDialRetriesUntilSocketExists(t *testing.T) {
	s := newFakeServer(t, standard)
	started := make(chan struct{})
	go func() {
		time.Sleep(150 * time.Millisecond) // QEMU creates the socket late
		s.start()
		close(started)
	}()
	c, err := Dial(ctxT(t, 5*time.Second), s.path, Options{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.Close()
	<-started
}

func TestDialWithoutGreetingRespectsContext(t *testing.T) {
	s := newFakeServer(t, standard)
	s.greet = false
	s.start()
	start := time.Now()
	_, err := Dial(ctxT(t, 200*time.Millisecond), s.path, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v after a 200ms deadline", d)
	}
}

func TestDialMissingSocketRespectsContext(t *testing.T) {
	s := newFakeServer(t, standard) // never started
	_, err := Dial(ctxT(t, 100*time.Millisecond), s.path, Options{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Dial = %v, want deadline exceeded mentioning the missing socket", err)
	}
}

func TestExecuteQMPError(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	c := dialFake(t, s, Options{})
	err := c.Execute(ctxT(t, 5*time.Second), "fail", nil, nil)
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("Execute = %v, want *Error", err)
	}
	if qe.Class != "DeviceNotFound" || qe.Desc != "Device 'nope' not found" {
		t.Errorf("got %+v", qe)
	}
	if errors.Is(err, ErrClosed) {
		t.Errorf("a QMP error must not look like a closed connection: %v", err)
	}
}

func TestExecuteLargeReply(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	c := dialFake(t, s, Options{})
	var out struct{ Blob string }
	if err := c.Execute(ctxT(t, 5*time.Second), "big", nil, &out); err != nil {
		t.Fatalf("big: %v", err)
	}
	if len(out.Blob) != 300<<10 {
		t.Errorf("blob length %d, want %d", len(out.Blob), 300<<10)
	}
	// The monitor must still work afterwards (go-qemu's does not).
	if err := c.Execute(ctxT(t, 5*time.Second), "echo", nil, nil); err != nil {
		t.Fatalf("echo after big reply: %v", err)
	}
}

func TestExecuteDeadlineWhenServerStopsAnswering(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	c := dialFake(t, s, Options{})
	start := time.Now()
	err := c.Execute(ctxT(t, 150*time.Millisecond), "hang", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("hang returned after %v", d)
	}
	// A timed-out command does not break the connection.
	if err := c.Execute(ctxT(t, 5*time.Second), "echo", nil, nil); err != nil {
		t.Fatalf("echo after timeout: %v", err)
	}
}

func TestExecuteServerClosesMidCommand(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	c := dialFake(t, s, Options{})
	start := time.Now()
	err := c.Execute(ctxT(t, 30*time.Second), "die", nil, nil)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("die = %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("die returned after %v, want prompt", d)
	}
	select {
	case <-c.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed after the server closed the connection")
	}
	if err := c.Execute(ctxT(t, 30*time.Second), "echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after close = %v, want ErrClosed", err)
	}
}

func TestConcurrentExecutesRoutedByID(t *testing.T) {
	const n = 64
	// The server holds every request until all n arrived, then answers in
	// reverse order, so a client that matched replies by arrival order
	// would hand out the wrong answers.
	var mu sync.Mutex
	var held []func()
	s := newFakeServer(t, func(c *fakeConn, req fakeReq) {
		mu.Lock()
		held = append(held, func() { c.reply(req, req.Arguments) })
		if len(held) == n {
			for i := len(held) - 1; i >= 0; i-- {
				held[i]()
			}
		}
		mu.Unlock()
	})
	s.start()
	c := dialFake(t, s, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			var out struct{ N int }
			if err := c.Execute(ctxT(t, 10*time.Second), "echo", map[string]int{"n": i}, &out); err != nil {
				errs <- err
				return
			}
			if out.N != i {
				errs <- fmt.Errorf("request %d got reply %d", i, out.N)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSlowSubscriberDoesNotBlockExecute(t *testing.T) {
	const n = 1000
	s := newFakeServer(t, func(c *fakeConn, req fakeReq) {
		for i := range n {
			c.event("TICK", map[string]int{"i": i})
		}
		c.reply(req, struct{}{})
	})
	s.start()
	c := dialFake(t, s, Options{})
	events, cancel := c.Subscribe(1) // never read until the end
	defer cancel()
	if err := c.Execute(ctxT(t, 5*time.Second), "flood", nil, nil); err != nil {
		t.Fatalf("Execute with a stuck subscriber: %v", err)
	}
	// Drop-oldest: the one slot holds the newest event.
	ev := <-events
	var d struct{ I int }
	json.Unmarshal(ev.Data, &d)
	if ev.Name != "TICK" || d.I != n-1 {
		t.Errorf("buffered event = %s %s, want the last TICK (i=%d)", ev.Name, ev.Data, n-1)
	}
}

func TestSubscribeThenWait(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	c := dialFake(t, s, Options{})
	// The fake sends RESUME before the reply to "cont", as QEMU does: only
	// a subscription made before Execute can see it.
	events, cancel := c.Subscribe(8)
	defer cancel()
	if err := c.Execute(ctxT(t, 5*time.Second), "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	ev, err := WaitFor(ctxT(t, 5*time.Second), events, "RESUME")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Unix(1700000000, 250000000)
	if !ev.Time.Equal(want) {
		t.Errorf("event time %v, want %v", ev.Time, want)
	}
	cancel()
	if _, ok := <-events; ok {
		t.Error("channel still open after cancel")
	}
}

func TestWaitEventSkipsOtherNamesAndSeesShutdownBeforeClose(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	c := dialFake(t, s, Options{})
	got := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		events, cancel := c.Subscribe(8)
		defer cancel()
		close(ready)
		ev, err := WaitFor(ctxT(t, 5*time.Second), events, "SHUTDOWN", "STOP")
		if err == nil && (ev.Name != "SHUTDOWN" || !strings.Contains(string(ev.Data), "host-qmp-quit")) {
			err = fmt.Errorf("got %s %s", ev.Name, ev.Data)
		}
		got <- err
	}()
	<-ready
	c.Execute(ctxT(t, 5*time.Second), "cont", nil, nil) // RESUME: must be skipped
	c.Execute(ctxT(t, 5*time.Second), "quit", nil, nil) // SHUTDOWN, then the server hangs up
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed")
	}
	// After the end, WaitEvent fails at once instead of blocking.
	if _, err := c.WaitEvent(ctxT(t, 5*time.Second), "RESUME"); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitEvent after close = %v, want ErrClosed", err)
	}
}

func TestCloseFailsPendingExecute(t *testing.T) {
	s := newFakeServer(t, standard)
	s.start()
	sent := make(chan struct{})
	c := dialFake(t, s, Options{Log: func(dir string, msg []byte) {
		if dir == "->" && strings.Contains(string(msg), `"hang"`) {
			close(sent)
		}
	}})
	errc := make(chan error, 1)
	go func() { errc <- c.Execute(ctxT(t, 30*time.Second), "hang", nil, nil) }()
	<-sent // Close must unblock a command already waiting for its reply
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("pending Execute = %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("pending Execute not released by Close")
	}
	if c.Close() != nil {
		t.Error("second Close returned an error")
	}
}
