// Package builder runs one qemu build: the steps from a template's source
// to a provisioned disk image in the output directory. Each step is a
// pipeline.Step over a typed State; the order below is Packer's
// (packer-plugin-qemu builder.go) where kiln has the same step, so Packer
// users can map log lines to what they know.
//
// Two choices differ from Packer on purpose:
//   - Nothing is written to output_directory until the build succeeded: the
//     build works in a hidden sibling directory and renames it into place at
//     the end. A failed or interrupted build leaves no output directory, and
//     -force replaces an old one only when the new one is complete.
//   - A QEMU that dies fails the build at once: a watcher cancels the build
//     with QEMU's exit status and stderr as the cause, instead of letting it
//     wait for an SSH timeout.
package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/kilnbuild/kiln/config"
	khttp "github.com/kilnbuild/kiln/http"
	"github.com/kilnbuild/kiln/hypervisor/qemu"
	"github.com/kilnbuild/kiln/hypervisor/qmp"
	"github.com/kilnbuild/kiln/pipeline"
	"github.com/kilnbuild/kiln/provision/ssh"
	"github.com/kilnbuild/kiln/ui"
)

// Step names, exported so the benchmark and tests can refer to phases.
const (
	StepOutputCheck = "output.check"
	StepWorkdir     = "workdir.create"
	StepFetch       = "source.fetch"
	StepDisk        = "disk.create"
	StepMedia       = "media.create"
	StepHTTP        = "http.start"
	StepSSHKey      = "ssh.key"
	StepQEMU        = "qemu.start"
	StepBoot        = "boot.command"
	StepSSH         = "ssh.connect"
	StepProvision   = "provision"
	StepShutdown    = "shutdown"
	StepConvert     = "disk.convert"
	StepCommit      = "output.commit"
)

// Undo is a step's cleanup.
type Undo = pipeline.Undo

// Options are the per-invocation settings of a build (CLI flags, paths).
type Options struct {
	Force   bool
	OnError string // "cleanup" (default) or "abort"
	UI      *ui.Build
	Log     *slog.Logger
	// LogDir receives the serial console log, the debug log and, on
	// failure, a screenshot. It outlives the build.
	LogDir   string
	CacheDir string
	Dir      string // the directory relative paths resolve against (cwd)
	Env      []string
	Stdin    io.Reader
	Secrets  *ui.Secrets
	Observe  func(pipeline.Event)
	// BootScreens saves a screenshot into LogDir after each boot step
	// (debug mode: kiln build with KILN_LOG or KILN_LOG_PATH set).
	BootScreens bool
}

// Artifact is one file of the build's output.
type Artifact struct {
	Path string
	Size int64
}

// Result describes a finished build.
type Result struct {
	OutputDir string
	Artifacts []Artifact
}

// State is what the steps share. Each field is written by one step and read
// by later ones; the comment names the writer.
type State struct {
	Build *config.Build
	Cfg   *config.QEMU
	Opts  Options

	OutputDir string   // output.check: absolute output_directory
	WorkDir   string   // workdir.create: sibling of OutputDir, renamed into it at the end
	OutDir    string   // workdir.create: WorkDir/out, the future output directory
	RunDir    string   // workdir.create: short path for sockets
	Source    string   // source.fetch: ISO or disk image path
	Disks     []string // disk.create: main disk first, then disk_additional_size
	CDs       []string // media.create: cd_files ISO
	Kernel    string   // media.create: boot_kernel extracted from the ISO
	Initrd    string   // media.create: boot_initrd extracted from the ISO
	HTTP      *khttp.Server
	SSHKey    []byte // ssh.key: private key PEM, if any
	PublicKey string // ssh.key: authorized_keys line of a generated key
	Accel     string
	Proc      *qemu.Process
	QMP       *qmp.Client
	Console   *qemu.Console
	SSHPort   int
	Comm      *ssh.Client
	LV        *lvState // libvirt builds only (libvirt.go)

	cancel      context.CancelCauseFunc
	expectExit  atomic.Bool // set by shutdown: QEMU exiting is now success
	keepWorkDir bool
	vncPassword string
	efiFormat   string
}

// ErrQEMUExited is the cause of a build cancelled because QEMU died.
var ErrQEMUExited = errors.New("QEMU exited unexpectedly")

// ErrVMDiskError is the cause of a build cancelled because QEMU paused the
// VM on a disk I/O error, typically a full host file system.
var ErrVMDiskError = errors.New("QEMU stopped the VM on a disk error")

// Run runs the build. On failure the undo stack is unwound (or, with
// -on-error=abort, after the user had a look) before Run returns.
func Run(parent context.Context, b *config.Build, opts Options) (*Result, error) {
	if opts.OnError == "" {
		opts.OnError = "cleanup"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	st := &State{Build: b, Cfg: b.Source, Opts: opts, cancel: cancel}

	steps := Steps()
	if b.Libvirt != nil {
		steps = LibvirtSteps() // libvirt.go
	}
	r := pipeline.New(steps...)
	r.UndoTimeout = 30 * time.Second
	r.Observe = func(ev pipeline.Event) {
		opts.Log.Debug("step", "step", ev.Step, "event", ev.Kind.String(), "duration", ev.Duration, "err", ev.Err)
		if opts.Observe != nil {
			opts.Observe(ev)
		}
	}
	err := r.Run(ctx, st)
	if err != nil {
		// Say why first: the QEMU exit beats the "context canceled" the
		// interrupted step saw.
		err = st.qemuCause(ctx, err)
		st.onFailure(parent, err)
	}
	if uerr := r.Unwind(context.WithoutCancel(ctx)); uerr != nil {
		opts.Log.Warn("cleanup", "err", uerr)
		opts.UI.Error("cleanup: %v", uerr)
		if err == nil {
			err = fmt.Errorf("cleanup after build: %w", uerr)
		}
	}
	if err != nil {
		return nil, err
	}
	return st.result()
}

// Steps returns the build's steps in order.
func Steps() []pipeline.Step[State] {
	return []pipeline.Step[State]{
		{Name: StepOutputCheck, Run: stepOutputCheck},
		{Name: StepWorkdir, Run: stepWorkdir},
		{Name: StepFetch, Run: stepFetch},
		{Name: StepDisk, Run: stepDisk},
		{Name: StepMedia, Run: stepMedia},
		{Name: StepHTTP, Run: stepHTTP},
		{Name: StepSSHKey, Run: stepSSHKey},
		{Name: StepQEMU, Run: stepQEMU},
		{Name: StepBoot, Run: stepBoot},
		{Name: StepSSH, Run: stepSSH},
		{Name: StepProvision, Run: stepProvision},
		{Name: StepShutdown, Run: stepShutdown},
		{Name: StepConvert, Run: stepConvert},
		{Name: StepCommit, Run: stepCommit},
	}
}

// onFailure saves what helps debugging while the VM still exists, and with
// -on-error=abort keeps the VM running until the user interrupts.
func (st *State) onFailure(parent context.Context, err error) {
	u := st.Opts.UI
	if png, serr := st.saveScreen(context.WithoutCancel(parent), "failure-screen.png"); serr != nil {
		st.Opts.Log.Warn("screenshot failed", "err", serr)
	} else if png != "" {
		u.Message("screenshot of the VM screen: %s", png)
	}
	if st.Opts.OnError != "abort" || parent.Err() != nil {
		return
	}
	u.Error("%v", err)
	u.Say("-on-error=abort: keeping the VM and its disk for inspection")
	if st.Proc != nil && !exited(st.Proc) {
		if st.SSHPort != 0 {
			u.Message("ssh: ssh -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null %s@127.0.0.1", st.SSHPort, st.Cfg.SSHUsername)
		}
		u.Message("QMP socket: %s", filepath.Join(st.RunDir, "qmp.sock"))
	}
	if st.Opts.LogDir != "" {
		u.Message("serial console log: %s", filepath.Join(st.Opts.LogDir, "serial.log"))
	}
	if st.LV != nil {
		st.describeLibvirt()
	}
	if st.WorkDir != "" {
		st.keepWorkDir = true
		u.Message("disk(s): %v (kept after exit)", st.Disks)
	}
	u.Say("press Ctrl-C to stop the VM and exit")
	<-parent.Done()
}

func (st *State) result() (*Result, error) {
	res := &Result{OutputDir: st.OutputDir}
	err := filepath.WalkDir(st.OutputDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		res.Artifacts = append(res.Artifacts, Artifact{Path: p, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing artifacts in %s: %w", st.OutputDir, err)
	}
	return res, nil
}

// qemuCause returns QEMU's death as the build's error when QEMU exited
// unexpectedly: a step usually notices first through its symptom (the SSH
// connection dropped), a moment before the process is reaped.
func (st *State) qemuCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrQEMUExited) {
		return cause
	}
	// The step that noticed (e.g. provisioning over SSH) is kept: it says
	// what the build was doing when the disk filled up.
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrVMDiskError) {
		if se, ok := errors.AsType[*pipeline.StepError](err); ok {
			return &pipeline.StepError{Step: se.Step, Err: fmt.Errorf("%w (the step saw: %v)", cause, se.Err)}
		}
		return cause
	}
	if st.Proc == nil || st.expectExit.Load() {
		return err
	}
	select {
	case <-st.Proc.Done():
		return fmt.Errorf("%w: %v (%v)", ErrQEMUExited, st.Proc.ExitError(), err)
	case <-time.After(500 * time.Millisecond):
		return err
	}
}

func exited(p *qemu.Process) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}
