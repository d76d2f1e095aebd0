// Command bench measures kiln end to end: it runs the example build
// (testdata/example/example.pkr.hcl) several times and prints median phase
// timings, kiln's own overhead and kiln's peak memory.
//
// kiln's overhead cannot be read off a build alone: most of a build is the
// guest booting, running provisioners and powering off under TCG. So the
// benchmark also boots the same guest image with a plain QEMU command line,
// as kiln does, and times the guest by itself; what a build takes beyond
// that is kiln's. Builds and direct boots alternate, so load from other
// processes on the machine affects both alike.
//
// Usage (from the repository, as `make bench` does):
//
//	go run ./bench [-n 5] [-keep]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

const module = "github.com/kilnbuild/kiln"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 5, "number of builds (and of direct guest boots)")
	keep := fs.Bool("keep", false, "keep the temporary directory (builds, debug logs, serial logs)")
	exportsOnly := fs.Bool("exports-only", false, "run only the export section (conversion, compression, upload)")
	typingOnly := fs.Bool("typing-only", false, "run only the boot-command typing section")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: bench [-n runs] [-keep]")
		return 2
	}
	// Ctrl-C or SIGTERM stops the current run: kiln gets SIGINT and
	// unwinds, a direct QEMU is killed, and the temporary directory goes.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b, err := setup(ctx, stderr)
	if b != nil {
		defer func() {
			if *keep {
				fmt.Fprintf(stderr, "bench: kept %s\n", b.tmp)
				return
			}
			os.RemoveAll(b.tmp)
		}()
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}

	if *exportsOnly {
		return b.exportSection(ctx, stdout, stderr)
	}
	if *typingOnly {
		return b.typingSection(ctx, stdout, stderr)
	}
	var builds []buildSample
	var guests []guestSample
	for i := 1; i <= *n; i++ {
		bs, out, err := b.build(ctx, i)
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted")
			return 130
		}
		if err != nil {
			fmt.Fprintf(stderr, "bench: build %d/%d failed: %v\n--- kiln output ---\n%s", i, *n, err, out)
			return 1
		}
		fmt.Fprintf(stderr, "bench: build %d/%d: total %s, peak RSS %s\n", i, *n, secs(bs.Total), mb(bs.PeakRSSKiB))
		builds = append(builds, bs)

		gs, err := b.guest(ctx, i)
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted")
			return 130
		}
		if err != nil {
			fmt.Fprintf(stderr, "bench: direct guest boot %d/%d failed: %v\n", i, *n, err)
			return 1
		}
		fmt.Fprintf(stderr, "bench: guest %d/%d: boot %s, SSH login %s, poweroff %s\n", i, *n, secs(gs.Boot), secs(gs.Login), secs(gs.Poweroff))
		guests = append(guests, gs)
	}
	fmt.Fprintln(stdout)
	writeReport(stdout, summarize(builds, guests))
	if code := b.typingSection(ctx, stdout, stderr); code != 0 {
		return code
	}
	return b.exportSection(ctx, stdout, stderr)
}

// bench holds what every run shares.
type bench struct {
	root     string // repository root
	tmp      string // everything the benchmark writes
	kiln     string // the kiln binary built for this benchmark
	guestDir string // guest.qcow2 and SHA256SUMS, for the template's guest_dir
	key      string // root's SSH key in the guest, mode 0600
	template string
}

// setup builds kiln and finds the test guest. On error the returned bench,
// if not nil, still names the temporary directory to remove.
func setup(ctx context.Context, stderr io.Writer) (*bench, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "kiln-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating the temporary directory: %w", err)
	}
	b := &bench{root: root, tmp: tmp, kiln: filepath.Join(tmp, "kiln"),
		template: filepath.Join(root, "testdata", "example", "example.pkr.hcl")}

	fmt.Fprintln(stderr, "bench: building kiln")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.kiln, "./cmd/kiln")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return b, fmt.Errorf("building kiln: %v\n%s", err, out)
	}

	ensure := exec.CommandContext(ctx, filepath.Join(root, "testdata", "guest", "ensure.sh"))
	ensure.Stderr = stderr
	out, err := ensure.Output()
	if err != nil {
		return b, fmt.Errorf("getting the test guest (testdata/guest/ensure.sh): %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if b.guestDir, err = guestWithSums(dir, filepath.Join(tmp, "guest")); err != nil {
		return b, err
	}
	// ssh refuses a key others can read; the repository copy may have lost
	// its mode in a checkout.
	b.key = filepath.Join(tmp, "test_ed25519")
	if err := copyFile(filepath.Join(root, "testdata", "guest", "test_ed25519"), b.key, 0o600); err != nil {
		return b, fmt.Errorf("copying the guest's SSH key: %w", err)
	}
	return b, nil
}

// guestWithSums returns dir if it already has the SHA256SUMS the example
// template verifies the disk against, else a copy of the disk with one.
func guestWithSums(dir, copyDir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "SHA256SUMS")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(copyDir, 0o755); err != nil {
		return "", fmt.Errorf("creating the guest copy: %w", err)
	}
	disk := filepath.Join(copyDir, "guest.qcow2")
	if err := copyFile(filepath.Join(dir, "guest.qcow2"), disk, 0o644); err != nil {
		return "", fmt.Errorf("copying the guest disk: %w", err)
	}
	sum, err := sha256File(disk)
	if err != nil {
		return "", err
	}
	line := sum + "  guest.qcow2\n"
	if err := os.WriteFile(filepath.Join(copyDir, "SHA256SUMS"), []byte(line), 0o644); err != nil {
		return "", fmt.Errorf("writing SHA256SUMS: %w", err)
	}
	return copyDir, nil
}

// repoRoot walks up from the working directory to kiln's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+module+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the kiln repository (no go.mod for " + module + "); run from the repository")
		}
		dir = parent
	}
}
