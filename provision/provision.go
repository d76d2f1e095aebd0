// Package provision runs a build's provisioners (shell, file, shell-local,
// breakpoint) with Packer's semantics, over a Communicator to the guest.
package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kilnbuild/kiln/config"
)

// Communicator reaches the guest. provision/ssh.Client implements it.
// Run returns the command's exit status (non-zero is not an error) and an
// error wrapping ssh.ErrDisconnected when the connection dropped while the
// command ran; the next call reconnects.
type Communicator interface {
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	Upload(ctx context.Context, dst string, r io.Reader, mode os.FileMode) error
	UploadDir(ctx context.Context, dst, srcDir string) error
	Download(ctx context.Context, src string, w io.Writer) error
	DownloadDir(ctx context.Context, src, dst string) error
}

// Env is what a provisioner may use from the build.
type Env struct {
	// BuildName and BuilderType become PACKER_BUILD_NAME and
	// PACKER_BUILDER_TYPE ("qemu").
	BuildName, BuilderType string
	// HTTPIP and HTTPPort become PACKER_HTTP_IP, PACKER_HTTP_PORT and
	// PACKER_HTTP_ADDR; empty/0 when the build serves no HTTP directory.
	HTTPIP   string
	HTTPPort int
	// Comm is nil when communicator = "none".
	Comm Communicator
	// Say prints a user-visible progress line; nil prints nothing.
	Say func(format string, args ...any)
	// Stdout and Stderr receive command output; nil discards it.
	Stdout, Stderr io.Writer
	// Stdin is read by the breakpoint provisioner.
	Stdin io.Reader
	// Dir is what relative local paths resolve against; default the
	// current directory.
	Dir string
}

// retryDelay is the pause between attempts of a provisioner with
// max_retries, as in Packer. A variable so tests need not wait.
var retryDelay = 2 * time.Second

var errProvisionerTimeout = errors.New("provisioner timeout")

// Run runs one provisioner: pause_before, then up to 1+max_retries
// attempts, each bounded by timeout.
func Run(ctx context.Context, p *config.Provisioner, env Env) error {
	env, err := env.withDefaults()
	if err != nil {
		return err
	}
	label := p.Type + " provisioner"
	if p.Name != "" {
		label = fmt.Sprintf("%s %q", label, p.Name)
	}
	if p.PauseBefore > 0 {
		env.Say("Pausing %s before the next provisioner...", p.PauseBefore)
		if err := sleep(ctx, p.PauseBefore); err != nil {
			return fmt.Errorf("%s: pause_before: %w", label, err)
		}
	}
	attempts := 1 + max(p.MaxRetries, 0)
	for i := 1; ; i++ {
		err = runOnce(ctx, p, env)
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s: %w", label, err)
		if i >= attempts || ctx.Err() != nil {
			return err
		}
		env.Say("%v; retrying (attempt %d of %d)", err, i+1, attempts)
		if err := sleep(ctx, retryDelay); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
	}
}

func runOnce(ctx context.Context, p *config.Provisioner, env Env) error {
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, p.Timeout, errProvisionerTimeout)
		defer cancel()
	}
	var err error
	switch {
	case p.Shell != nil:
		err = runShell(ctx, p.Shell, env)
	case p.File != nil:
		err = runFile(ctx, p.File, env)
	case p.ShellLocal != nil:
		err = runShellLocal(ctx, p.ShellLocal, env)
	case p.Breakpoint != nil:
		err = runBreakpoint(ctx, p.Breakpoint, env)
	default:
		err = fmt.Errorf("unsupported provisioner type %q", p.Type)
	}
	if err != nil && context.Cause(ctx) == errProvisionerTimeout {
		return fmt.Errorf("timed out after %s (the provisioner's timeout): %w", p.Timeout, err)
	}
	return err
}

func (env Env) withDefaults() (Env, error) {
	if env.Say == nil {
		env.Say = func(string, ...any) {}
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return env, fmt.Errorf("finding the current directory: %w", err)
		}
		env.Dir = wd
	}
	return env, nil
}

func (env Env) comm(kind string) (Communicator, error) {
	if env.Comm == nil {
		return nil, fmt.Errorf("the %s provisioner needs a connection to the guest, but communicator = \"none\"", kind)
	}
	return env.Comm, nil
}

// runBreakpoint pauses until the user presses Enter.
func runBreakpoint(ctx context.Context, b *config.Breakpoint, env Env) error {
	if b.Disable {
		env.Say("Breakpoint %q disabled; continuing", b.Note)
		return nil
	}
	if env.Stdin == nil {
		return errors.New("breakpoint: no terminal to wait on")
	}
	env.Say("Pausing at breakpoint: %s", b.Note)
	env.Say("Press enter to continue.")
	line := make(chan error, 1)
	// The read cannot be interrupted; on cancellation it is left behind
	// and ends with the next line or EOF.
	go func() { line <- readLine(env.Stdin) }()
	select {
	case err := <-line:
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("breakpoint: reading stdin: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readLine reads up to a newline one byte at a time, so that nothing
// after the line is taken from a shared stdin.
func readLine(r io.Reader) error {
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 && b[0] == '\n' {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
