package qemu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
)

// ProbeAccel picks the accelerator for binary: "kvm" only if /dev/kvm
// opens read-write AND a test guest really runs under KVM; otherwise
// "tcg". why says how the decision was made, for the log.
//
// Opening /dev/kvm is not enough. On nested-virtualisation hosts (kiln's
// own CI machine among them) /dev/kvm opens and QEMU starts with -accel
// kvm, but the vCPU crawls: measured there, a real-mode loop of 10M
// iterations took 13.7 s under KVM and ~0.05 s under TCG, and a Linux
// kernel printed nothing in 20 s under KVM (under 1 s with TCG). So the
// probe boots a 64 KiB firmware blob that runs that loop and then writes
// to QEMU's isa-debug-exit port, and requires QEMU to exit through that
// port within guestTimeout (3 s) of "cont".
//
// It never hangs: every step is bounded by ctx and internal timeouts, and
// the test QEMU is killed afterwards. A completed probe is cached per
// binary for the life of the process; a probe cut short by ctx is not.
func ProbeAccel(ctx context.Context, binary string) (accel string, why string) {
	return defaultProber.probe(ctx, binary)
}

type accelResult struct {
	done       chan struct{}
	accel, why string
	final      bool
}

type accelProber struct {
	openKVM  func() error
	bootTest func(ctx context.Context, binary, accel string) error

	mu    sync.Mutex
	cache map[string]*accelResult
}

var defaultProber = &accelProber{
	openKVM: func() error {
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return err
		}
		return f.Close()
	},
	bootTest: func(ctx context.Context, binary, accel string) error {
		return guestTest{iterations: 10_000_000, guestTimeout: 3 * time.Second}.run(ctx, binary, accel)
	},
}

func (p *accelProber) probe(ctx context.Context, binary string) (string, string) {
	for {
		p.mu.Lock()
		if p.cache == nil {
			p.cache = make(map[string]*accelResult)
		}
		r, ok := p.cache[binary]
		if !ok {
			r = &accelResult{done: make(chan struct{})}
			p.cache[binary] = r
			p.mu.Unlock()
			r.accel, r.why, r.final = p.decide(ctx, binary)
			p.mu.Lock()
			if !r.final {
				delete(p.cache, binary)
			}
			close(r.done)
			p.mu.Unlock()
			return r.accel, r.why
		}
		p.mu.Unlock()
		select {
		case <-r.done:
			if r.final {
				return r.accel, r.why
			}
			// That probe was cut short by its caller's ctx; run our own.
		case <-ctx.Done():
			return "tcg", "accelerator probe cancelled: " + ctx.Err().Error()
		}
	}
}

// decide returns the accelerator, the reason, and whether the result may
// be cached (false when ctx cut the probe short).
func (p *accelProber) decide(ctx context.Context, binary string) (string, string, bool) {
	if err := p.openKVM(); err != nil {
		return "tcg", fmt.Sprintf("/dev/kvm cannot be opened read-write (%v)", err), true
	}
	start := time.Now()
	err := p.bootTest(ctx, binary, "kvm")
	if ctx.Err() != nil {
		return "tcg", "accelerator probe cancelled: " + ctx.Err().Error(), false
	}
	if err != nil {
		return "tcg", fmt.Sprintf("/dev/kvm opens but a test guest did not run under KVM: %v", err), true
	}
	return "kvm", fmt.Sprintf("/dev/kvm opens and a test guest ran under KVM in %v", time.Since(start).Round(time.Millisecond)), true
}

// debugExitValue is what the test guest writes to isa-debug-exit; QEMU
// then exits with status (value<<1)|1.
const (
	debugExitValue  = 0x21
	debugExitStatus = debugExitValue<<1 | 1
)

// guestTest boots the probe guest under one accelerator.
type guestTest struct {
	iterations   uint32        // length of the busy loop
	guestTimeout time.Duration // from "cont" to QEMU's exit
}

// firmware returns a 64 KiB BIOS image. The CPU starts at the reset
// vector F000:FFF0 (the last 16 bytes) in real mode; that jumps to offset
// 0, which counts ecx down from iterations and then writes debugExitValue
// to port 0xf4 (isa-debug-exit), which ends QEMU.
func (g guestTest) firmware() []byte {
	img := make([]byte, 64<<10)
	code := []byte{0x66, 0xB9, 0, 0, 0, 0} // mov ecx, iterations
	binary.LittleEndian.PutUint32(code[2:], g.iterations)
	code = append(code,
		0x66, 0x49, // loop: dec ecx
		0x75, 0xFC, //       jnz loop
		0xB0, debugExitValue, // mov al, debugExitValue
		0xE6, 0xF4, // out 0xf4, al
		0xF4,       // hlt (not reached)
		0xEB, 0xFD, // jmp hlt
	)
	copy(img, code)
	// Reset vector: jmp near to offset 0 (rel16 from the next instruction).
	rel := uint16(0x10000 - (0xFFF0 + 3))
	img[0xFFF0] = 0xE9
	binary.LittleEndian.PutUint16(img[0xFFF1:], rel)
	return img
}

// run starts QEMU paused with the firmware, connects QMP (proving QEMU
// itself came up), sends cont and waits for the guest to end QEMU.
func (g guestTest) run(ctx context.Context, binary, accel string) error {
	const startTimeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(ctx, startTimeout+g.guestTimeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "kiln-accel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fw, sock := filepath.Join(dir, "fw.bin"), filepath.Join(dir, "qmp.sock")
	if err := os.WriteFile(fw, g.firmware(), 0o644); err != nil {
		return err
	}
	p, err := Start(ctx, []string{binary,
		"-accel", accel, "-machine", "pc", "-m", "16", "-S",
		"-display", "none", "-nodefaults",
		"-bios", fw, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-qmp", "unix:" + sock + ",server=on,wait=off",
	}, StartOptions{})
	if err != nil {
		return err
	}
	defer func() {
		p.Kill()
		// A process stuck in the kernel may not die at once; never
		// wait for it unboundedly.
		select {
		case <-p.Done():
		case <-time.After(2 * time.Second):
		}
	}()

	dialCtx, cancelDial := context.WithTimeout(ctx, startTimeout)
	defer cancelDial()
	go func() {
		select {
		case <-p.Done():
			cancelDial()
		case <-dialCtx.Done():
		}
	}()
	c, err := qmp.Dial(dialCtx, sock, qmp.Options{})
	if err != nil {
		select {
		case <-p.Done():
			return fmt.Errorf("QEMU did not start with -accel %s: %w", accel, p.ExitError())
		default:
		}
		return fmt.Errorf("QEMU with -accel %s: %w", accel, err)
	}
	defer c.Close()
	if err := c.Execute(ctx, "cont", nil, nil); err != nil && !errors.Is(err, qmp.ErrClosed) {
		return fmt.Errorf("QEMU with -accel %s: %w", accel, err)
	}
	start := time.Now()
	t := time.NewTimer(g.guestTimeout)
	defer t.Stop()
	select {
	case <-p.Done():
		var ee *ExitError
		if errors.As(p.ExitError(), &ee) && ee.Code == debugExitStatus {
			return nil
		}
		return fmt.Errorf("QEMU with -accel %s ended without the guest's signal: %v", accel, p.ExitError())
	case <-t.C:
		return fmt.Errorf("the test guest (a %d-iteration loop, well under 0.5 s on any working accelerator) had not finished after %v under -accel %s: the vCPU is hanging or crawling",
			g.iterations, time.Since(start).Round(time.Millisecond), accel)
	case <-ctx.Done():
		return ctx.Err()
	}
}
