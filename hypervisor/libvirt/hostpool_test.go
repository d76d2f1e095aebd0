package libvirt

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestHostPoolSpreadsAndLimits(t *testing.T) {
	p, err := NewHostPool([]string{"qemu+ssh://a/system", "qemu+ssh://b/system"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []string
	var releases []func()
	for range 4 {
		uri, rel, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, uri)
		releases = append(releases, rel)
	}
	want := []string{"qemu+ssh://a/system", "qemu+ssh://b/system", "qemu+ssh://a/system", "qemu+ssh://b/system"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("assignment %v, want %v (spread before stacking)", got, want)
		}
	}
	// Both hosts are full: the fifth build waits.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := p.Acquire(short); err == nil {
		t.Fatal("a fifth build got a slot beyond the per-host limit")
	}
	// Releasing a slot on b lets a waiting build onto b.
	var wg sync.WaitGroup
	wg.Add(1)
	var next string
	go func() {
		defer wg.Done()
		next, _, _ = p.Acquire(ctx)
	}()
	time.Sleep(20 * time.Millisecond)
	releases[1]()
	releases[1]() // idempotent: must not free a second slot
	wg.Wait()
	if next != "qemu+ssh://b/system" {
		t.Fatalf("waiting build went to %q, want the host that freed a slot", next)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running[0] != 2 || p.running[1] != 2 {
		t.Fatalf("running = %v, want [2 2]", p.running)
	}
}

func TestHostPoolTryAcquire(t *testing.T) {
	p, err := NewHostPool([]string{"qemu:///system", "qemu+ssh://b/system"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, relA, ok := p.TryAcquire()
	if !ok || a != "qemu:///system" {
		t.Fatalf("first TryAcquire = %q, %v; want the first host", a, ok)
	}
	b, _, ok := p.TryAcquire()
	if !ok || b != "qemu+ssh://b/system" {
		t.Fatalf("second TryAcquire = %q, %v; want the other host", b, ok)
	}
	if uri, rel, ok := p.TryAcquire(); ok || rel != nil {
		t.Fatalf("TryAcquire got %q beyond the limit", uri)
	}
	relA()
	if uri, _, ok := p.TryAcquire(); !ok || uri != "qemu:///system" {
		t.Fatalf("after a release TryAcquire = %q, %v; want the freed host", uri, ok)
	}
}
