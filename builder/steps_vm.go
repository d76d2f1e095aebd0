package builder

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/boot"
	"github.com/kilnbuild/kiln/boot/firmware"
	khttp "github.com/kilnbuild/kiln/http"
	"github.com/kilnbuild/kiln/hypervisor/qemu"
	"github.com/kilnbuild/kiln/hypervisor/qmp"
	"github.com/kilnbuild/kiln/internal/fsx"
	"github.com/kilnbuild/kiln/provision"
	"github.com/kilnbuild/kiln/provision/ssh"
)

// stepHTTP serves http_directory / http_content for answer files.
func stepHTTP(ctx context.Context, st *State) (Undo, error) {
	c := st.Cfg
	if c.HTTPDirectory == "" && len(c.HTTPContent) == 0 {
		return nil, nil
	}
	srv, err := khttp.Start(ctx, khttp.Options{
		Dir:     st.abs(c.HTTPDirectory),
		Content: c.HTTPContent,
		Bind:    c.HTTPBindAddress,
		PortMin: c.HTTPPortMin,
		PortMax: c.HTTPPortMax,
		Log:     func(format string, args ...any) { st.Opts.UI.Message(format, args...) },
	})
	if err != nil {
		return nil, fmt.Errorf("starting HTTP server: %w", err)
	}
	st.HTTP = srv
	st.Opts.UI.Say("Serving answer files on http://%s:%d", c.HTTPBindAddress, srv.Port())
	return func(context.Context) error { return srv.Close() }, nil
}

// stepSSHKey loads ssh_private_key_file, or makes a temporary ed25519 key
// when the template gives neither a key nor a password.
func stepSSHKey(ctx context.Context, st *State) (Undo, error) {
	c := st.Cfg
	if c.Communicator != "ssh" {
		return nil, nil
	}
	switch {
	case c.SSHPrivateKeyFile != "":
		key, err := os.ReadFile(st.abs(c.SSHPrivateKeyFile))
		if err != nil {
			return nil, fmt.Errorf("reading ssh_private_key_file: %w", err)
		}
		st.SSHKey = key
	case c.SSHPassword == "":
		key, pub, err := ssh.GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("generating temporary SSH key: %w", err)
		}
		st.SSHKey, st.PublicKey = key, pub
		st.Opts.UI.Say("Created a temporary ed25519 SSH key ({{ .SSHPublicKey }} in boot_command)")
	}
	if st.SSHKey != nil {
		st.Opts.Secrets.Add(string(st.SSHKey))
	}
	return nil, nil
}

// stepQEMU starts QEMU paused, connects QMP and the serial console, forwards
// the SSH port, then lets the guest run. Starting paused means no serial
// output and no QMP event is missed.
func stepQEMU(ctx context.Context, st *State) (Undo, error) {
	c, u := st.Cfg, st.Opts.UI
	var err error
	st.Accel = c.Accelerator
	if st.Accel == "" {
		accel, why := qemu.ProbeAccel(ctx, c.QEMUBinary)
		st.Accel = accel
		u.Message("accelerator: %s (%s)", accel, why)
	}
	if c.EFIBoot {
		if err := st.prepareEFI(ctx); err != nil {
			return nil, err
		}
	}
	paths := Paths{Disks: st.Disks, Source: st.Source, RunDir: st.RunDir,
		CDs: st.CDs, Kernel: st.Kernel, Initrd: st.Initrd}
	if st.Kernel != "" && c.BootKernelArgs != "" {
		if paths.Append, err = boot.Render(c.BootKernelArgs, st.templateData()); err != nil {
			return nil, fmt.Errorf("boot_kernel_args: %w", err)
		}
	}
	if c.BootCommandTransport == "vnc" && (len(c.BootCommand) > 0 || len(c.BootSteps) > 0) {
		// QEMU binds the first free display in the range itself (to=), so
		// parallel builds cannot race for a port; the port is read back
		// over QMP. key-delay-ms=0: QEMU's VNC server otherwise spaces
		// every key event 10 ms apart in a queue of its own, which falls
		// behind kiln's pacing and, past ~1000 queued entries, drops
		// events (a lost Shift release turned the rest of a 300-character
		// line upper case). kiln paces the keys itself, as over QMP.
		paths.VNC = fmt.Sprintf("%s:%d,to=%d,key-delay-ms=0", c.VNCBindAddress, c.VNCPortMin-5900, c.VNCPortMax-5900)
		if c.VNCUsePassword {
			paths.VNC += ",password=on"
			st.vncPassword = c.VNCPassword
			if st.vncPassword == "" {
				st.vncPassword = randomPassword()
			}
			st.Opts.Secrets.Add(st.vncPassword)
		}
	}
	spec := QEMUSpec(c, st.Accel, paths)
	if c.EFIBoot {
		spec.EFIVars = filepath.Join(st.WorkDir, "efivars.fd")
		spec.EFIFormat = st.efiFormat
	}
	argv, err := qemu.Args(spec)
	if err != nil {
		return nil, err
	}
	st.Opts.Log.Info("qemu command line", "argv", strings.Join(argv, " "))
	u.Say("Starting QEMU (%s)", st.Accel)
	proc, err := qemu.Start(ctx, argv, qemu.StartOptions{Log: st.Opts.Log.Info})
	if err != nil {
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	st.Proc = proc
	undo := func(ctx context.Context) error {
		if st.QMP != nil {
			st.QMP.Close()
		}
		// How QEMU exited was reported already (or is the killing we just
		// did); the undo fails only if QEMU is still there.
		err := proc.Kill()
		if err == nil {
			<-proc.Done()
		}
		if st.Console != nil {
			// The guest's last words (its poweroff messages) may still be
			// in the socket: read them into the log before closing.
			if err == nil {
				t := time.NewTimer(2 * time.Second)
				select {
				case <-st.Console.Done():
				case <-t.C:
				}
				t.Stop()
			}
			st.Console.Close()
		}
		return err
	}
	// A QEMU that dies fails the build at once, whatever step is waiting.
	go func() {
		<-proc.Done()
		if !st.expectExit.Load() {
			st.cancel(fmt.Errorf("%w: %v", ErrQEMUExited, proc.ExitError()))
		}
	}()

	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st.QMP, err = qmp.Dial(dctx, spec.QMPSocket, qmp.Options{Log: func(dir string, msg []byte) {
		st.Opts.Log.Debug("qmp "+dir, "msg", string(msg))
	}})
	if err != nil {
		return undo, st.qemuFailed("connecting to QMP", err)
	}
	// Subscribed before the VM runs (it starts paused), so no error is missed.
	diskEvents, _ := st.QMP.Subscribe(16)
	go st.watchDiskErrors(diskEvents)
	st.Console, err = qemu.DialSerial(dctx, spec.SerialSocket, st.serialLog())
	if err != nil {
		return undo, st.qemuFailed("connecting to the serial console", err)
	}
	if c.Communicator == "ssh" && c.SSHHost == "" {
		port, err := qemu.ForwardHostPort(dctx, st.QMP, "user.0", "127.0.0.1", c.HostPortMin, c.HostPortMax, c.SSHPort)
		if err != nil {
			return undo, st.qemuFailed("forwarding the SSH port", err)
		}
		st.SSHPort = port
		u.Message("guest SSH port %d is forwarded to 127.0.0.1:%d", c.SSHPort, port)
	}
	if st.vncPassword != "" {
		args := map[string]string{"protocol": "vnc", "password": st.vncPassword}
		if err := st.QMP.Execute(dctx, "set_password", args, nil); err != nil {
			return undo, st.qemuFailed("setting the VNC password", err)
		}
	}
	if err := st.QMP.Execute(dctx, "cont", nil, nil); err != nil {
		return undo, st.qemuFailed("resuming the VM", err)
	}
	u.Message("serial console log: %s", st.serialLog())
	return undo, nil
}

// watchDiskErrors fails the build when QEMU pauses the VM on a disk I/O
// error (its default werror=enospc: a working disk that cannot grow because
// the host file system is full). The guest then just goes silent, and
// without this the build would fail later with a misleading SSH or
// shutdown timeout. It ends when the QMP connection does (events closes).
func (st *State) watchDiskErrors(events <-chan qmp.Event) {
	for ev := range events {
		if ev.Name != "BLOCK_IO_ERROR" {
			continue
		}
		var d struct {
			Device    string `json:"device"`
			NodeName  string `json:"node-name"`
			Operation string `json:"operation"`
			Action    string `json:"action"`
			NoSpace   bool   `json:"nospace"`
			Reason    string `json:"reason"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.Action != "stop" {
			continue
		}
		reason := cmp.Or(d.Reason, "I/O error")
		if d.NoSpace {
			reason = fmt.Sprintf("%s (the host file system holding the work directory %s is full)", cmp.Or(d.Reason, "no space left on device"), st.WorkDir)
		}
		st.cancel(fmt.Errorf("%w: %s error on %s: %s", ErrVMDiskError, d.Operation, cmp.Or(d.Device, d.NodeName), reason))
		return
	}
}

// qemuFailed prefers QEMU's own exit message to the symptom seen over QMP.
func (st *State) qemuFailed(doing string, err error) error {
	select {
	case <-st.Proc.Done():
		return fmt.Errorf("%s: %w: %v", doing, ErrQEMUExited, st.Proc.ExitError())
	case <-time.After(200 * time.Millisecond):
		return fmt.Errorf("%s: %w", doing, err)
	}
}

// prepareEFI finds the UEFI firmware (efi_firmware_code/vars, else QEMU's
// firmware descriptors: no hard-coded OVMF paths that differ between
// distributions) and gives the build its own copy of the variable store,
// so a build never writes to the system's template file.
func (st *State) prepareEFI(ctx context.Context) error {
	c := st.Cfg
	if c.EFICode == "" || c.EFIVars == "" {
		fw, err := firmware.Find("x86_64", c.MachineType, false, nil)
		if err != nil {
			return fmt.Errorf("finding UEFI firmware (set efi_firmware_code and efi_firmware_vars, or install ovmf): %w", err)
		}
		if c.EFICode == "" {
			c.EFICode, st.efiFormat = fw.Code, fw.CodeFormat
		}
		if c.EFIVars == "" {
			c.EFIVars = fw.Vars
		}
		st.Opts.UI.Message("UEFI firmware: %s (from %s)", c.EFICode, fw.Descriptor)
	}
	if err := fsx.CopyFile(ctx, filepath.Join(st.WorkDir, "efivars.fd"), c.EFIVars); err != nil {
		return fmt.Errorf("copying efi_firmware_vars: %w", err)
	}
	return nil
}

func (st *State) serialLog() string {
	if st.Opts.LogDir != "" {
		return filepath.Join(st.Opts.LogDir, "serial.log")
	}
	return filepath.Join(st.RunDir, "serial.log")
}

// stepSSH waits for the guest's SSH server.
func stepSSH(ctx context.Context, st *State) (Undo, error) {
	c := st.Cfg
	if c.Communicator != "ssh" {
		return nil, nil
	}
	host, port := "127.0.0.1", st.SSHPort
	if c.SSHHost != "" {
		host, port = c.SSHHost, c.SSHPort
	}
	st.Opts.UI.Say("Waiting for SSH on %s:%d (timeout %s)", host, port, c.SSHTimeoutDur)
	start := time.Now()
	comm, err := ssh.Connect(ctx, ssh.Config{
		Host: host, Port: port, User: c.SSHUsername,
		Password:          c.SSHPassword,
		PrivateKey:        st.SSHKey,
		Timeout:           c.SSHTimeoutDur,
		HandshakeAttempts: c.SSHHandshakeAttempts,
		KeepAlive:         c.SSHKeepAliveDur,
		Alive: func() error {
			if exited(st.Proc) {
				return fmt.Errorf("%w: %v", ErrQEMUExited, st.Proc.ExitError())
			}
			return nil
		},
		Log: func(format string, args ...any) { st.Opts.Log.Debug(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, fmt.Errorf("%w (serial console log: %s)", err, st.serialLog())
	}
	st.Comm = comm
	st.Opts.UI.Message("connected to SSH after %s", time.Since(start).Round(100*time.Millisecond))
	return func(context.Context) error { comm.Close(); return nil }, nil
}

// stepProvision runs the provisioners in order.
func stepProvision(ctx context.Context, st *State) (Undo, error) {
	env := provision.Env{
		BuildName:   st.Build.SourceName,
		BuilderType: "qemu",
		Say:         st.Opts.UI.Say,
		Stdin:       st.Opts.Stdin,
		Dir:         st.Opts.Dir,
	}
	if st.Comm != nil {
		env.Comm = st.Comm
	}
	if st.HTTP != nil {
		env.HTTPIP, env.HTTPPort = st.httpIP(), st.HTTP.Port()
	}
	for _, p := range st.Build.Provisioners {
		// Load already dropped provisioners whose only/except exclude
		// this build.
		out, errw := st.Opts.UI.Writer(), st.Opts.UI.Writer()
		env.Stdout, env.Stderr = out, errw
		err := provision.Run(ctx, p, env)
		out.Flush()
		errw.Flush()
		if err != nil {
			return nil, fmt.Errorf("provisioner %s: %w", provisionerLabel(p.Type, p.Name), err)
		}
	}
	return nil, nil
}

func provisionerLabel(typ, name string) string {
	if name != "" {
		return fmt.Sprintf("%s (%s)", typ, name)
	}
	return typ
}

// stepShutdown stops the guest cleanly: shutdown_command over SSH, or an
// ACPI power button press over QMP, then waits for QEMU to exit on its own.
// Packer kills QEMU when no shutdown_command is set, which can lose data
// the guest had not synced; kiln presses the power button instead.
func stepShutdown(ctx context.Context, st *State) (Undo, error) {
	c, u := st.Cfg, st.Opts.UI
	if err := st.beginShutdown(ctx, st.powerdown); err != nil {
		return nil, err
	}
	timeout := c.ShutdownTimeoutDur
	start := time.Now()
	if err := st.waitExit(ctx, timeout); err == nil {
		u.Message("VM stopped after %s", time.Since(start).Round(100*time.Millisecond))
		return nil, st.Proc.ExitError()
	} else if ctx.Err() != nil {
		return nil, err
	}
	if c.Communicator != "none" && c.ShutdownCommand != "" {
		// Second rung: the command did not stop the guest; try ACPI.
		u.Message("the guest is still running after %s; pressing the ACPI power button", timeout)
		if err := st.powerdown(ctx); err == nil && st.waitExit(ctx, 30*time.Second) == nil {
			return nil, st.Proc.ExitError()
		}
	}
	st.Proc.Kill()
	return nil, fmt.Errorf("the guest did not power off within shutdown_timeout (%s); QEMU was killed and the disk may be inconsistent, so no image was written", timeout)
}

func (st *State) powerdown(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := st.QMP.Execute(qctx, "system_powerdown", nil, nil); err != nil && !exited(st.Proc) {
		return fmt.Errorf("QMP system_powerdown: %w", err)
	}
	return nil
}

func (st *State) waitExit(ctx context.Context, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return st.Proc.Wait(wctx)
}

// randomPassword makes a VNC password: VNC authentication uses at most 8
// characters.
func randomPassword() string {
	const chars = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// beginShutdown is the first rung of the shutdown ladder, the same on
// every hypervisor: trim if asked, then shutdown_command over SSH, or the
// ACPI power button (powerdown) when there is none, or nothing when the
// guest powers off by itself (communicator "none"). The SSH connection is
// closed afterwards; the caller waits for the VM to stop.
func (st *State) beginShutdown(ctx context.Context, powerdown func(context.Context) error) error {
	c, u := st.Cfg, st.Opts.UI
	if err := st.trimGuest(ctx); err != nil {
		return fmt.Errorf("trimming the guest's free space: %w", err)
	}
	st.expectExit.Store(true)
	switch {
	case c.Communicator == "none":
		u.Say("Waiting for the guest to power off by itself (timeout %s)", c.ShutdownTimeoutDur)
	case c.ShutdownCommand != "":
		u.Say("Gracefully halting the VM: %s", c.ShutdownCommand)
		w := u.Writer()
		_, err := st.Comm.Run(ctx, c.ShutdownCommand, nil, w, w)
		w.Flush()
		if err != nil && !errors.Is(err, ssh.ErrDisconnected) {
			return fmt.Errorf("running shutdown_command: %w", err)
		}
	default:
		u.Say("Pressing the ACPI power button (no shutdown_command given)")
		if err := powerdown(ctx); err != nil {
			return err
		}
	}
	if st.Comm != nil {
		st.Comm.Close()
	}
	return nil
}
