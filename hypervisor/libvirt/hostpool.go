package libvirt

import (
	"context"
	"fmt"
	"sync"
)

// HostPool spreads builds over libvirt hosts (kiln extension): each URI
// runs at most Limit builds at once, and a build goes to the host with the
// fewest running builds (ties: the first listed), so builds spread out
// before they stack up.
type HostPool struct {
	mu      sync.Mutex
	uris    []string
	limit   int
	running []int
	freed   chan struct{} // closed and replaced whenever a slot frees
}

// NewHostPool makes a pool over uris with a per-host limit (at least 1).
func NewHostPool(uris []string, limit int) (*HostPool, error) {
	if len(uris) == 0 {
		return nil, fmt.Errorf("host pool: no libvirt URIs")
	}
	if limit < 1 {
		limit = 1
	}
	return &HostPool{uris: uris, limit: limit, running: make([]int, len(uris)), freed: make(chan struct{})}, nil
}

// Acquire waits for a free slot and returns its URI and the release
// function, which must be called exactly once.
func (p *HostPool) Acquire(ctx context.Context) (string, func(), error) {
	for {
		uri, release, freed := p.take()
		if release != nil {
			return uri, release, nil
		}
		select {
		case <-ctx.Done():
			return "", nil, fmt.Errorf("waiting for a free libvirt host: %w", context.Cause(ctx))
		case <-freed:
		}
	}
}

// TryAcquire is Acquire without the wait: ok is false when every host is
// full. The builder tries it first so it says it is waiting only when it
// is.
func (p *HostPool) TryAcquire() (uri string, release func(), ok bool) {
	uri, release, _ = p.take()
	return uri, release, release != nil
}

// take takes a slot on the least busy host with room, or returns the
// channel closed when a slot next frees.
func (p *HostPool) take() (string, func(), <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := -1
	for i, n := range p.running {
		if n < p.limit && (best < 0 || n < p.running[best]) {
			best = i
		}
	}
	if best < 0 {
		return "", nil, p.freed
	}
	p.running[best]++
	var once sync.Once
	return p.uris[best], func() { once.Do(func() { p.release(best) }) }, nil
}

func (p *HostPool) release(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[i]--
	close(p.freed)
	p.freed = make(chan struct{})
}
