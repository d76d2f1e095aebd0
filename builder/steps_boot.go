package builder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/boot"
	"github.com/kilnbuild/kiln/media"
)

// guestHostIP is where a guest on QEMU's user network reaches the host's
// loopback: kiln's servers bind 127.0.0.1 and the guest uses 10.0.2.2.
const guestHostIP = "10.0.2.2"

// stepMedia builds the cd_files/cd_content ISO and extracts boot_kernel and
// boot_initrd from the installer ISO.
func stepMedia(ctx context.Context, st *State) (Undo, error) {
	c := st.Cfg
	if len(c.CDFiles) > 0 || len(c.CDContent) > 0 {
		entries, err := media.Entries(st.Opts.Dir, c.CDFiles, c.CDContent)
		if err != nil {
			return nil, fmt.Errorf("collecting cd_files/cd_content: %w", err)
		}
		iso := filepath.Join(st.WorkDir, "cd.iso")
		st.Opts.UI.Say("Creating CD %q with %d files", c.CDLabel, len(entries))
		if err := media.WriteISO(ctx, iso, c.CDLabel, entries); err != nil {
			return nil, fmt.Errorf("creating the cd_files ISO: %w", err)
		}
		st.CDs = append(st.CDs, iso)
	}
	if c.BootKernel != "" {
		st.Kernel = filepath.Join(st.WorkDir, "boot-kernel")
		files := map[string]string{c.BootKernel: st.Kernel}
		if c.BootInitrd != "" {
			st.Initrd = filepath.Join(st.WorkDir, "boot-initrd")
			files[c.BootInitrd] = st.Initrd
		}
		st.Opts.UI.Say("Extracting %s from the ISO for direct kernel boot", strings.Join(mapKeys(files), " and "))
		if err := media.ExtractFromISO(ctx, st.Source, files); err != nil {
			return nil, fmt.Errorf("reading boot_kernel/boot_initrd from %s: %w", st.Source, err)
		}
	}
	return nil, nil
}

func mapKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// templateData is what {{ .HTTPIP }} and friends expand to in boot_command
// and boot_kernel_args.
func (st *State) templateData() boot.TemplateData {
	d := boot.TemplateData{Name: st.Cfg.VMName, SSHPublicKey: st.PublicKey}
	if st.HTTP != nil {
		d.HTTPIP, d.HTTPPort = st.httpIP(), st.HTTP.Port()
	}
	return d
}

// stepBoot waits for the guest (boot_wait, or kiln's boot_wait_serial),
// types boot_command or boot_steps, then waits for the answer files named
// by http_wait_fetched.
func stepBoot(ctx context.Context, st *State) (Undo, error) {
	c, u := st.Cfg, st.Opts.UI
	steps := c.BootSteps
	if len(c.BootCommand) > 0 {
		steps = [][]string{{strings.Join(c.BootCommand, "")}}
	}
	if len(steps) > 0 {
		if err := st.waitBootPrompt(ctx); err != nil {
			return nil, err
		}
		sender, closeSender, err := st.keySender(ctx)
		if err != nil {
			return nil, err
		}
		defer closeSender()
		u.Say("Typing the boot command over %s", strings.ToUpper(c.BootCommandTransport))
		if err := st.typeBootSteps(ctx, steps, sender); err != nil {
			return nil, err
		}
	}
	return nil, st.waitFetched(ctx)
}

// typeBootSteps types boot_steps (boot_command is one step) through sender,
// announcing each step's description, and reports how long it took.
func (st *State) typeBootSteps(ctx context.Context, steps [][]string, sender boot.Sender) error {
	u := st.Opts.UI
	start := time.Now()
	for i, step := range steps {
		if len(step) > 1 && step[1] != "" {
			u.Message("boot step %d: %s", i+1, step[1])
		}
		if err := st.typeStep(ctx, step[0], sender); err != nil {
			return fmt.Errorf("typing boot command: %w", err)
		}
		st.bootScreen(ctx, i+1)
	}
	u.Message("boot command typed in %s", time.Since(start).Round(10*time.Millisecond))
	return nil
}

func (st *State) waitBootPrompt(ctx context.Context) error {
	c, u := st.Cfg, st.Opts.UI
	if c.BootWaitSerial != "" {
		u.Say("Waiting for %q on the serial console (timeout %s)", c.BootWaitSerial, c.BootWaitSerialDur)
		wctx, cancel := context.WithTimeout(ctx, c.BootWaitSerialDur)
		defer cancel()
		if err := st.Console.WaitFor(wctx, c.BootWaitSerial); err != nil {
			return fmt.Errorf("boot_wait_serial: %q did not appear on the serial console within %s (see %s): %w",
				c.BootWaitSerial, c.BootWaitSerialDur, st.serialLog(), err)
		}
		return nil
	}
	if c.BootWaitDur > 0 {
		u.Say("Waiting %s for boot (boot_wait; kiln's boot_wait_serial waits for the guest instead)", c.BootWaitDur)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(c.BootWaitDur):
		}
	}
	return nil
}

func (st *State) typeStep(ctx context.Context, text string, sender boot.Sender) error {
	rendered, err := boot.Render(text, st.templateData())
	if err != nil {
		return err
	}
	actions, err := boot.Parse(rendered)
	if err != nil {
		return err
	}
	return boot.Type(ctx, actions, sender, boot.TypeOptions{
		KeyInterval: st.Cfg.BootKeyIntervalDur,
		Log:         func(s string) { st.Opts.Log.Debug("boot command: " + s) },
		WaitSerial: func(ctx context.Context, text string, timeout time.Duration) error {
			if timeout <= 0 {
				timeout = st.Cfg.BootWaitSerialDur
			}
			wctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return st.Console.WaitFor(wctx, text)
		},
	})
}

// keySender returns the QMP (default) or VNC key sender.
func (st *State) keySender(ctx context.Context) (boot.Sender, func(), error) {
	if st.Cfg.BootCommandTransport != "vnc" {
		return &boot.QMPSender{Exec: st.QMP.Execute}, func() {}, nil
	}
	var info struct {
		Host    string `json:"host"`
		Service string `json:"service"`
	}
	if err := st.QMP.Execute(ctx, "query-vnc", nil, &info); err != nil {
		return nil, nil, fmt.Errorf("asking QEMU for its VNC port: %w", err)
	}
	addr := st.Cfg.VNCBindAddress + ":" + info.Service
	st.Opts.UI.Message("VNC server: %s", addr)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := boot.DialVNC(dctx, addr, st.vncPassword)
	if err != nil {
		return nil, nil, err
	}
	return &boot.VNCSender{Conn: conn}, func() { conn.Close() }, nil
}

// waitFetched fails the build when the guest does not fetch the answer
// files named by http_wait_fetched in time: an installer that never asks
// for its kickstart would otherwise sit until some far later timeout.
func (st *State) waitFetched(ctx context.Context) error {
	c := st.Cfg
	if len(c.HTTPWaitFetched) == 0 {
		return nil
	}
	st.Opts.UI.Say("Waiting for the guest to fetch %s (timeout %s)", strings.Join(c.HTTPWaitFetched, ", "), c.HTTPWaitFetchedDur)
	wctx, cancel := context.WithTimeout(ctx, c.HTTPWaitFetchedDur)
	defer cancel()
	for _, p := range c.HTTPWaitFetched {
		if err := st.HTTP.WaitFetched(wctx, p); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("%w: %s within %s: %v", ErrNotFetched, p, c.HTTPWaitFetchedDur, err)
		}
	}
	return nil
}

// ErrNotFetched: the guest never fetched an answer file it had to.
var ErrNotFetched = errors.New("the guest never fetched its answer file")

// bootScreen saves what the VM shows after boot step n, in debug mode, so
// a user can see where a boot command went astray. A failed screenshot is
// only logged: it must not fail the build.
func (st *State) bootScreen(ctx context.Context, n int) {
	if !st.Opts.BootScreens {
		return
	}
	png, err := st.saveScreen(ctx, fmt.Sprintf("boot-step-%02d.png", n))
	if err != nil {
		st.Opts.Log.Warn("boot step screenshot", "step", n, "err", err)
		return
	}
	if png != "" {
		st.Opts.UI.Message("screen after boot step %d: %s", n, png)
	}
}
