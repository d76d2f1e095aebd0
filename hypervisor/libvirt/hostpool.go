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
		p.mu.Lock()
		best := -1
		for i, n := range p.running {
			if n < p.limit && (best < 0 || n < p.running[best]) {
				best = i
			}
		}
		if best >= 0 {
			p.running[best]++
			p.mu.Unlock()
			var once sync.Once
			return p.uris[best], func() { once.Do(func() { p.release(best) }) }, nil
		}
		freed := p.freed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", nil, fmt.Errorf("waiting for a free libvirt host: %w", context.Cause(ctx))
		case <-freed:
		}
	}
}

func (p *HostPool) release(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[i]--
	close(p.freed)
	p.freed = make(chan struct{})
}
