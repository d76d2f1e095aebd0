// Package disk wraps qemu-img, kiln's tool for creating, converting,
// resizing and inspecting disk images.
//
// Why shell out: no maintained pure-Go qcow2 or VMDK writer exists, and
// qemu-img is installed with QEMU anyway. Every command line is logged
// exactly as run, and every error carries the command and qemu-img's
// stderr, because "exit status 1" alone is useless for a disk problem.
package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Tool runs qemu-img.
type Tool struct {
	// Binary is the qemu-img executable; default "qemu-img" from PATH.
	Binary string
	// Log, if set, receives every command line before it runs.
	Log func(format string, args ...any)
}

// CommandError is a failed qemu-img run.
type CommandError struct {
	Args   []string // full argv, Args[0] is the binary
	Stderr string   // trimmed
	Err    error    // usually *exec.ExitError, or the context's error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", shellQuote(e.Args), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode returns qemu-img's exit status, or -1 if it did not exit
// normally.
func (e *CommandError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// ErrImagesDiffer is returned (wrapped) by Compare for images whose
// contents differ.
var ErrImagesDiffer = errors.New("images differ")

func (t Tool) binary() string {
	if t.Binary == "" {
		return "qemu-img"
	}
	return t.Binary
}

func (t Tool) logf(format string, args ...any) {
	if t.Log != nil {
		t.Log(format, args...)
	}
}

// command builds the exec.Cmd for args and logs it. On cancellation the
// process is killed, and Wait gives up on its pipes after a second.
func (t Tool) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, t.binary(), args...)
	cmd.WaitDelay = time.Second
	t.logf("disk: %s", shellQuote(cmd.Args))
	return cmd
}

// run runs qemu-img and returns its stdout.
func (t Tool) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := t.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), cmdError(ctx, cmd, &stderr, err)
	}
	return stdout.Bytes(), nil
}

func cmdError(ctx context.Context, cmd *exec.Cmd, stderr *bytes.Buffer, err error) error {
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return &CommandError{Args: cmd.Args, Stderr: strings.TrimSpace(stderr.String()), Err: err}
}

// Create makes a new image. sizeBytes may be 0 with a backing file (the
// overlay then has the backing file's size). A relative backing path is
// resolved by QEMU relative to the new image's directory, not the working
// directory. QEMU 6.1+ refuses a backing file without its format, so an
// empty backingFormat is probed with Info. extra is passed before the path
// (e.g. "-o", "compression_type=zstd").
func (t Tool) Create(ctx context.Context, path, format string, sizeBytes int64, backing, backingFormat string, extra []string) error {
	args := []string{"create"}
	if format != "" {
		args = append(args, "-f", format)
	}
	if backing != "" {
		if backingFormat == "" {
			info, err := t.Info(ctx, backing)
			if err != nil {
				return fmt.Errorf("probing backing file format for %s: %w", path, err)
			}
			backingFormat = info.Format
		}
		args = append(args, "-b", backing, "-F", backingFormat)
	}
	args = append(args, extra...)
	args = append(args, path)
	if sizeBytes > 0 || backing == "" {
		args = append(args, strconv.FormatInt(sizeBytes, 10))
	}
	_, err := t.run(ctx, args...)
	return err
}

// Resize sets the virtual size of path. Growing only: qemu-img refuses to
// shrink without --shrink, which would lose data.
func (t Tool) Resize(ctx context.Context, path, format string, sizeBytes int64) error {
	args := []string{"resize"}
	if format != "" {
		args = append(args, "-f", format)
	}
	args = append(args, path, strconv.FormatInt(sizeBytes, 10))
	_, err := t.run(ctx, args...)
	return err
}

// Info describes an image, from `qemu-img info --output=json`.
type Info struct {
	Format      string
	VirtualSize int64 // bytes the guest sees
	ActualSize  int64 // bytes allocated on the host
	// BackingFile is the backing file name as recorded in the image
	// (possibly relative); FullBackingFile is it resolved by QEMU.
	BackingFile     string
	FullBackingFile string
	BackingFormat   string
	DirtyFlag       bool
}

// Info inspects path (format probed by qemu-img).
func (t Tool) Info(ctx context.Context, path string) (Info, error) {
	out, err := t.run(ctx, "info", "--output=json", path)
	if err != nil {
		return Info{}, err
	}
	var raw struct {
		Format              string `json:"format"`
		VirtualSize         int64  `json:"virtual-size"`
		ActualSize          int64  `json:"actual-size"`
		BackingFilename     string `json:"backing-filename"`
		FullBackingFilename string `json:"full-backing-filename"`
		BackingFormat       string `json:"backing-filename-format"`
		DirtyFlag           bool   `json:"dirty-flag"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return Info{}, fmt.Errorf("parsing qemu-img info for %s: %w", path, err)
	}
	return Info{
		Format:          raw.Format,
		VirtualSize:     raw.VirtualSize,
		ActualSize:      raw.ActualSize,
		BackingFile:     raw.BackingFilename,
		FullBackingFile: raw.FullBackingFilename,
		BackingFormat:   raw.BackingFormat,
		DirtyFlag:       raw.DirtyFlag,
	}, nil
}

// Check verifies an image's metadata. Leaked clusters (exit 3) are
// harmless and only logged; formats without checks (raw) pass.
func (t Tool) Check(ctx context.Context, path, format string) error {
	args := []string{"check"}
	if format != "" {
		args = append(args, "-f", format)
	}
	args = append(args, path)
	out, err := t.run(ctx, args...)
	var ce *CommandError
	if err != nil && errors.As(err, &ce) && ctx.Err() == nil {
		switch ce.ExitCode() {
		case 3:
			t.logf("disk: %s has leaked clusters (harmless): %s", path, strings.TrimSpace(string(out)))
			return nil
		case 63:
			t.logf("disk: %s: format has no consistency check", path)
			return nil
		case 2:
			return fmt.Errorf("image %s is corrupted: %s: %w", path, strings.TrimSpace(string(out)), err)
		}
	}
	return err
}

// Compare returns nil if a and b have the same guest-visible content
// (formats probed; a shorter image compares as if zero-padded), an error
// wrapping ErrImagesDiffer naming the first differing offset if not, and
// another error if the comparison could not run.
func (t Tool) Compare(ctx context.Context, a, b string) error {
	out, err := t.run(ctx, "compare", a, b)
	var ce *CommandError
	if err != nil && errors.As(err, &ce) && ce.ExitCode() == 1 && ctx.Err() == nil {
		return fmt.Errorf("%w: %s and %s: %s", ErrImagesDiffer, a, b, strings.TrimSpace(string(out)))
	}
	return err
}

// shellQuote renders argv as a copy-pasteable shell command.
func shellQuote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

// removeIfExists removes p, ignoring a missing file.
func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
