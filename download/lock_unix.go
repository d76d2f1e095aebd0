//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package download

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// lockPoll is how often a blocked lockFile retries. flock(2) cannot be
// interrupted by a context, so the lock is polled non-blocking instead.
const lockPoll = 200 * time.Millisecond

// lockFile takes an exclusive flock on p (created if missing), waiting
// until it is free or ctx is done. The lock dies with the process, so a
// crashed download never leaves a stale lock.
func lockFile(ctx context.Context, p string, logf func(string, ...any)) (unlock func(), err error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		if !logged {
			logf("download: waiting for another download holding %s", p)
			logged = true
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
