// Package e2e runs the kiln binary against a real guest under QEMU (TCG).
// These tests are the proof that a template becomes a provisioned image.
// In CI (CI=true) a missing QEMU or guest fixture is a failure, never a
// skip; elsewhere they are skipped with -short.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/internal/testutil"
)

var (
	kilnBin  string // built once by TestMain
	guestDir string // the cached test guest (testdata/guest/ensure.sh)
	setupErr error
	repoRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		wd, _ := os.Getwd()
		repoRoot = filepath.Dir(wd)
		tmp, err := os.MkdirTemp("", "kiln-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		kilnBin = filepath.Join(tmp, "kiln")
		if !testing.Short() {
			setupErr = setup(kilnBin)
		}
		return m.Run()
	}())
}

func setup(bin string) error {
	build := exec.Command("go", "build", "-o", bin, "./cmd/kiln")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building kiln: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return fmt.Errorf("qemu-system-x86_64 not found (run `make setup`): %w", err)
	}
	ensure := exec.Command(filepath.Join(repoRoot, "testdata/guest/ensure.sh"))
	ensure.Stderr = os.Stderr
	out, err := ensure.Output()
	if err != nil {
		return fmt.Errorf("building the test guest: %w", err)
	}
	guestDir = strings.TrimSpace(string(out))
	return nil
}

// requireVM skips under -short outside CI and fails when the VM setup is
// broken: in CI a VM test must run.
func requireVM(t *testing.T) {
	t.Helper()
	testutil.VMTest(t)
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// kiln is one running `kiln` process with its output captured line by line.
type kiln struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr, interleaved
	lines  chan string
	done   chan struct{}
	exit   int
	tmpDir string
}

// env is the environment tests run kiln in: its own TMPDIR (so stray
// temporary files are visible), log and cache directories.
type env struct {
	Dir     string // working directory and where outputs go
	TmpDir  string
	LogDir  string
	Marker  string // unique vm_name prefix, to find this test's QEMU processes
	Environ []string
}

func newEnv(t *testing.T) *env {
	root := t.TempDir()
	e := &env{
		Dir:    filepath.Join(root, "work"),
		TmpDir: filepath.Join(root, "tmp"),
		LogDir: filepath.Join(root, "logs"),
		Marker: fmt.Sprintf("kiln-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9),
	}
	for _, d := range []string{e.Dir, e.TmpDir, e.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.Environ = append(os.Environ(), "TMPDIR="+e.TmpDir, "KILN_LOG_DIR="+e.LogDir,
		"KILN_CACHE_DIR="+filepath.Join(root, "cache"), "KILN_LOG_PATH="+filepath.Join(root, "debug.log"))
	t.Cleanup(func() { killStray(e.Marker) })
	return e
}

func (e *env) start(t *testing.T, args ...string) *kiln {
	t.Helper()
	k := &kiln{t: t, lines: make(chan string, 4096), done: make(chan struct{}), tmpDir: e.TmpDir}
	k.cmd = exec.Command(kilnBin, args...)
	k.cmd.Dir = e.Dir
	k.cmd.Env = e.Environ
	pr, pw := io.Pipe()
	k.cmd.Stdout, k.cmd.Stderr = pw, pw
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			k.mu.Lock()
			k.out.WriteString(line + "\n")
			k.mu.Unlock()
			if testing.Verbose() {
				t.Log(line)
			}
			select {
			case k.lines <- line:
			default:
			}
		}
	}()
	go func() {
		err := k.cmd.Wait()
		pw.Close()
		<-scanned
		k.exit = 0
		if ee, ok := err.(*exec.ExitError); ok {
			k.exit = ee.ExitCode()
		} else if err != nil {
			k.exit = -1
		}
		close(k.done)
	}()
	t.Cleanup(func() {
		select {
		case <-k.done:
		default:
			k.cmd.Process.Kill()
			<-k.done
		}
	})
	return k
}

// waitLine waits until a line containing s is printed.
func (k *kiln) waitLine(s string, timeout time.Duration) {
	k.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line := <-k.lines:
			if strings.Contains(line, s) {
				return
			}
		case <-k.done:
			k.t.Fatalf("kiln exited (%d) before printing %q:\n%s", k.exit, s, k.output())
		case <-deadline:
			k.t.Fatalf("no line containing %q within %s:\n%s", s, timeout, k.output())
		}
	}
}

// wait waits for kiln to exit and returns its exit code and how long the
// wait took.
func (k *kiln) wait(timeout time.Duration) (int, time.Duration) {
	k.t.Helper()
	start := time.Now()
	select {
	case <-k.done:
		return k.exit, time.Since(start)
	case <-time.After(timeout):
		k.cmd.Process.Kill()
		k.t.Fatalf("kiln did not exit within %s:\n%s", timeout, k.output())
	}
	return 0, 0
}

func (k *kiln) output() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.out.String()
}

// qemuPids lists QEMU processes whose command line contains marker.
func qemuPids(marker string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte("qemu-system")) && bytes.Contains(cmdline, []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func killStray(marker string) {
	for _, pid := range qemuPids(marker) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// mustBuild runs kiln with args, which must succeed within timeout and
// leave nothing behind (assertClean), and returns its output.
func (e *env) mustBuild(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	k := e.start(t, args...)
	code, _ := k.wait(timeout)
	log := k.output()
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, log)
	}
	e.assertClean(t)
	return log
}

// assertClean checks a finished kiln left no QEMU process, no temporary
// file and no work directory behind.
func (e *env) assertClean(t *testing.T) {
	t.Helper()
	// QEMU dies with kiln; give the kernel a moment to reap it.
	deadline := time.Now().Add(3 * time.Second)
	for len(qemuPids(e.Marker)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := qemuPids(e.Marker); len(pids) > 0 {
		t.Errorf("QEMU processes left running: %v", pids)
	}
	if left, _ := os.ReadDir(e.TmpDir); len(left) > 0 {
		var names []string
		for _, l := range left {
			names = append(names, l.Name())
		}
		t.Errorf("temporary files left in TMPDIR: %v", names)
	}
	filepath.WalkDir(e.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.HasPrefix(d.Name(), ".kiln-") || strings.Contains(d.Name(), ".tmp-")) {
			t.Errorf("work file left behind: %s", p)
		}
		return nil
	})
}

// readGuestFile reads a file from the guest's FAT data partition (it starts
// at 1 MiB) in a qcow2 or raw image, with qemu-img and mtools.
func readGuestFile(t *testing.T, image, name string) string {
	t.Helper()
	raw := image
	if out, _ := exec.Command("qemu-img", "info", image).Output(); bytes.Contains(out, []byte("file format: qcow2")) {
		raw = filepath.Join(t.TempDir(), "image.raw")
		if out, err := exec.Command("qemu-img", "convert", "-O", "raw", image, raw).CombinedOutput(); err != nil {
			t.Fatalf("converting %s: %v\n%s", image, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mtype", "-i", raw+"@@1048576", "::/"+name)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("reading %s from %s: %v\n%s", name, image, err, out)
	}
	return string(out)
}

// typingText is 300 characters with every shifted character of a US
// keyboard and the ones a boot prompt treats specially (bench/typing.go
// types the same text).
var typingText = strings.Repeat(`Kiln_Types:Fast! "Shifted" ~Keys~ (a|b) <1> [x] {y} @home #2 $3 %4 ^5 &6 *7 +8 =9 -0 ;'/.,?\`+"` ", 10)[:300]

// assertTyped checks that the kiln.keys guest received exactly text as one
// line. It compares the guest's own length and sha256 of the line (its
// "typed-sum" line): that is what the guest received, whatever happens to
// the echo on the way out (QEMU's chardev logfile= doubled bytes under
// host load; kiln writes serial.log itself now). The echo is for diagnosis.
func assertTyped(t *testing.T, serial, text string) {
	t.Helper()
	sum := sha256.Sum256([]byte(text))
	want := fmt.Sprintf("kiln-installer: typed-sum: %d %x", len(text), sum)
	for _, line := range strings.Split(serial, "\n") {
		if strings.TrimRight(line, "\r") == want {
			return
		}
	}
	t.Errorf("the guest did not receive the typed line exactly: no %q on the serial console\nwant line %q\nserial log:\n%s", want, text, serial)
}

// assertBootStepScreen checks the screenshot debug mode saves after the
// first boot step (the harness sets KILN_LOG_PATH, which turns it on).
func assertBootStepScreen(t *testing.T, e *env) {
	t.Helper()
	shots, _ := filepath.Glob(filepath.Join(e.LogDir, "*", "boot-step-01.png"))
	if len(shots) != 1 {
		t.Errorf("no boot-step-01.png screenshot in debug mode")
	} else if b, _ := os.ReadFile(shots[0]); !strings.HasPrefix(string(b), "\x89PNG") {
		t.Errorf("%s is not a PNG", shots[0])
	}
}
