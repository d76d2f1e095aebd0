package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/boot"
	"github.com/kilnbuild/kiln/hypervisor/libvirt"
	"github.com/kilnbuild/kiln/internal/fsx"
	"github.com/kilnbuild/kiln/provision/ssh"
)

// stepLibvirtStart defines the domain, starts it paused, attaches the
// serial console, then lets it run. Its undo destroys and undefines the
// domain (unless -on-error=abort keeps it).
func stepLibvirtStart(ctx context.Context, st *State) (Undo, error) {
	c, lv, u := st.Cfg, st.LV, st.Opts.UI
	spec := domainSpec(c, lv.cfg, lv.name, lv.disks, lv.cdroms)
	spec.Kernel, spec.Initrd = lv.kernel, lv.initrd
	if lv.kernel != "" && c.BootKernelArgs != "" {
		args, err := boot.Render(c.BootKernelArgs, st.templateData())
		if err != nil {
			return nil, fmt.Errorf("boot_kernel_args: %w", err)
		}
		spec.Cmdline = args
	}
	// The undo looks the domain up by name when Define did not return it:
	// a define cut off by its deadline (or Ctrl-C) may still complete in
	// libvirtd, and must not be left behind.
	undo := func(ctx context.Context) error {
		if st.keepWorkDir {
			return nil
		}
		st.expectExit.Store(true) // the console watcher must not report this
		conn, err := lv.connection(ctx)
		if err != nil {
			return fmt.Errorf("removing domain %s: %w", lv.name, err)
		}
		d := lv.dom
		if d == nil || d.Name == "" {
			if d, err = conn.LookupDomain(ctx, lv.name); err != nil {
				if libvirt.IsNotFound(err) {
					return nil // the define never happened
				}
				return err
			}
		}
		err = d.Destroy(ctx)
		if uerr := d.Undefine(ctx); uerr != nil && err == nil {
			err = uerr
		}
		if lv.stopConsole != nil {
			lv.stopConsole()
		}
		if st.Console != nil {
			st.Console.Close()
		}
		return err
	}
	st.Opts.Log.Info("libvirt domain", "name", spec.Name, "type", spec.Type)
	dom, err := lv.conn.Define(ctx, spec)
	if err != nil {
		return undo, err
	}
	lv.dom = dom
	u.Say("Starting domain %s (%s) on %s", spec.Name, spec.Type, redactURI(lv.uri))
	if err := dom.StartPaused(ctx); err != nil {
		return undo, err
	}
	if err := st.openLibvirtConsole(ctx); err != nil {
		return undo, err
	}
	if err := dom.Resume(ctx); err != nil {
		return undo, err
	}
	u.Message("serial console log: %s", st.serialLog())
	if spec.VNC {
		if port, err := dom.VNCPort(ctx); err == nil {
			u.Message("VNC display on the libvirt host: port %d", port)
		}
	}
	return undo, nil
}

// stepLibvirtBoot is stepBoot with keys typed through virDomainSendKey.
func stepLibvirtBoot(ctx context.Context, st *State) (Undo, error) {
	c, u := st.Cfg, st.Opts.UI
	steps := c.BootSteps
	if len(c.BootCommand) > 0 {
		steps = [][]string{{strings.Join(c.BootCommand, "")}}
	}
	if len(steps) > 0 {
		if err := st.waitBootPrompt(ctx); err != nil {
			return nil, err
		}
		dom := st.LV.dom
		sender := &boot.KeycodeSender{Send: dom.SendKeys, HoldTime: 10 * time.Millisecond}
		u.Say("Typing the boot command through libvirt (send-key)")
		if err := st.typeBootSteps(ctx, steps, sender); err != nil {
			return nil, err
		}
	}
	return nil, st.waitFetched(ctx)
}

// stepLibvirtSSH finds the guest's address (ssh_host, else DHCP leases,
// the guest agent or ARP) and waits for its SSH server.
func stepLibvirtSSH(ctx context.Context, st *State) (Undo, error) {
	c, lv, u := st.Cfg, st.LV, st.Opts.UI
	if c.Communicator != "ssh" {
		return nil, nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.SSHTimeoutDur)
	defer cancel()
	host := c.SSHHost
	if host == "" {
		u.Say("Waiting for the guest's IP address (DHCP lease, guest agent or ARP)")
		a, err := lv.dom.WaitAddress(wctx)
		if err != nil {
			return nil, fmt.Errorf("%w (set ssh_host if the guest has a static address; serial console log: %s)", err, st.serialLog())
		}
		u.Message("guest address %s (from %s)", a.IP, a.Source)
		host = a.IP
	}
	lv.guestIP = host
	u.Say("Waiting for SSH on %s:%d (timeout %s)", host, c.SSHPort, c.SSHTimeoutDur)
	start := time.Now()
	comm, err := ssh.Connect(ctx, ssh.Config{
		Host: host, Port: c.SSHPort, User: c.SSHUsername,
		Password:          c.SSHPassword,
		PrivateKey:        st.SSHKey,
		Timeout:           c.SSHTimeoutDur,
		HandshakeAttempts: c.SSHHandshakeAttempts,
		KeepAlive:         c.SSHKeepAliveDur,
		Alive: func() error {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if running, err := lv.dom.Running(actx); err == nil && !running {
				return fmt.Errorf("domain %s stopped", lv.name)
			}
			return nil
		},
		Log: func(format string, args ...any) { st.Opts.Log.Debug(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, fmt.Errorf("%w (serial console log: %s)", err, st.serialLog())
	}
	st.Comm = comm
	u.Message("connected to SSH after %s", time.Since(start).Round(100*time.Millisecond))
	return func(context.Context) error { comm.Close(); return nil }, nil
}

// stepLibvirtShutdown is the qemu build's ladder on libvirt:
// shutdown_command over SSH (or the ACPI button when there is none), wait
// shutdown_timeout, press the ACPI button, wait 30 s, then destroy and
// fail, since a disk cut off mid-write is no image.
func stepLibvirtShutdown(ctx context.Context, st *State) (Undo, error) {
	c, lv, u := st.Cfg, st.LV, st.Opts.UI
	if err := st.beginShutdown(ctx, lv.dom.Shutdown); err != nil {
		return nil, err
	}
	timeout := c.ShutdownTimeoutDur
	start := time.Now()
	wait := func(d time.Duration) error {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return lv.dom.WaitStopped(wctx)
	}
	if err := wait(timeout); err == nil {
		lv.stopped = true
		u.Message("VM stopped after %s", time.Since(start).Round(100*time.Millisecond))
		return nil, nil
	} else if ctx.Err() != nil {
		return nil, err
	}
	if c.Communicator != "none" && c.ShutdownCommand != "" {
		u.Message("the guest is still running after %s; pressing the ACPI power button", timeout)
		if err := lv.dom.Shutdown(ctx); err == nil && wait(30*time.Second) == nil {
			lv.stopped = true
			return nil, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lv.dom.Destroy(dctx)
	return nil, fmt.Errorf("the guest did not power off within shutdown_timeout (%s); domain %s was destroyed and the disk may be inconsistent, so no image was written", timeout, lv.name)
}

// stepLibvirtDownload brings the disks back from the pool into the work
// directory, where stepConvert picks them up as in the qemu build.
func stepLibvirtDownload(ctx context.Context, st *State) (Undo, error) {
	lv, u := st.LV, st.Opts.UI
	for i, v := range lv.disks {
		dst := st.Disks[i]
		u.Say("Downloading volume %s/%s", v.Pool, v.Name)
		start := time.Now()
		err := fsx.WriteWith(dst, 0o644, func(f io.Writer) error {
			return lv.conn.Download(ctx, v, f)
		})
		if err != nil {
			return nil, fmt.Errorf("downloading %s/%s to %s: %w", v.Pool, v.Name, dst, err)
		}
		if fi, err := os.Stat(dst); err == nil {
			u.Message("%s: %s in %s", filepath.Base(dst), sizeString(fi.Size()), time.Since(start).Round(100*time.Millisecond))
		}
	}
	return nil, nil
}

// describeLibvirt tells an -on-error=abort user where the kept domain and
// volumes are.
func (st *State) describeLibvirt() {
	lv, u := st.LV, st.Opts.UI
	u.Message("libvirt host: %s", redactURI(lv.uri))
	if lv.dom != nil {
		u.Message("domain: %s (virsh -c %s console %s; virsh destroy/undefine --nvram when done)", lv.name, redactURI(lv.uri), lv.name)
	}
	for _, v := range append(append(append([]libvirt.Volume{}, lv.disks...), lv.cdroms...), lv.boot...) {
		u.Message("volume: %s/%s (virsh vol-delete --pool %s %s)", v.Pool, v.Name, v.Pool, v.Name)
	}
	if lv.guestIP != "" {
		u.Message("ssh: ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null %s@%s", st.Cfg.SSHUsername, lv.guestIP)
	}
}
