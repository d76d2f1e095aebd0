package qmp

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

type subscriber struct {
	ch   chan Event
	once sync.Once
}

func (s *subscriber) close() { s.once.Do(func() { close(s.ch) }) }

// Subscribe returns a channel that receives every event read after
// Subscribe returns, and a func that unsubscribes and closes the channel.
// The channel is also closed when the connection ends, after the last
// event QEMU sent (e.g. SHUTDOWN) has been delivered.
//
// The channel holds up to buffer events (at least 1). A subscriber that
// falls behind never blocks the reader or Execute: when its buffer is full
// the OLDEST queued event is dropped to make room for the new one, because
// the most recent events (SHUTDOWN, a final RESUME) are the ones a late
// reader needs.
func (c *Client) Subscribe(buffer int) (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, max(buffer, 1))}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		s.close()
		return s.ch, func() {}
	default:
	}
	c.subs[s] = struct{}{}
	return s.ch, func() {
		c.mu.Lock()
		if c.subs != nil {
			delete(c.subs, s)
		}
		c.mu.Unlock()
		s.close()
	}
}

// publish delivers ev to every subscriber without blocking.
func (c *Client) publish(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		select {
		case s.ch <- ev:
			continue
		default:
		}
		// Full: drop the oldest. Only this goroutine sends, so after one
		// receive there is room, and the send below cannot block.
		select {
		case <-s.ch:
		default:
		}
		select {
		case s.ch <- ev:
		default:
		}
	}
}

// WaitEvent waits for the next event whose name is one of names (any
// event if names is empty) among the events read after WaitEvent is
// called.
//
// It subscribes on entry, so it cannot see an event QEMU already sent. To
// wait for the consequence of a command without a race, subscribe first,
// then send the command, then wait:
//
//	events, cancel := c.Subscribe(16)
//	defer cancel()
//	if err := c.Execute(ctx, "cont", nil, nil); err != nil { ... }
//	ev, err := qmp.WaitFor(ctx, events, "RESUME")
func (c *Client) WaitEvent(ctx context.Context, names ...string) (Event, error) {
	events, cancel := c.Subscribe(64)
	defer cancel()
	ev, err := WaitFor(ctx, events, names...)
	if err != nil {
		if cerr := c.Err(); cerr != nil && ctx.Err() == nil {
			return Event{}, fmt.Errorf("waiting for QMP event %v: %w", names, cerr)
		}
	}
	return ev, err
}

// WaitFor reads events until one is named one of names (any event if names
// is empty), ctx ends, or the channel is closed (an ErrClosed error).
// Events with other names are consumed and discarded.
func WaitFor(ctx context.Context, events <-chan Event, names ...string) (Event, error) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return Event{}, fmt.Errorf("waiting for QMP event %v: %w", names, ErrClosed)
			}
			if len(names) == 0 || slices.Contains(names, ev.Name) {
				return ev, nil
			}
		case <-ctx.Done():
			return Event{}, fmt.Errorf("waiting for QMP event %v: %w", names, ctx.Err())
		}
	}
}
