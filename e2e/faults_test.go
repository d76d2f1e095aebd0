package e2e

// Faults the README promises to survive cleanly, besides Ctrl-C and a QEMU
// crash (e2e_test.go): a full disk and a dropped SSH connection. Each runs
// a real `kiln build` of testdata/e2e/faults.pkr.hcl and checks the error
// says what happened and that nothing is left behind.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory dir and
// unmounts it when the test ends. Mounting needs root: outside CI a test
// that cannot mount is skipped, in CI it fails.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		testutil.Missing(t, "mounting a %d-byte tmpfs on %s: %v (the full-disk tests need root)", size, dir, err)
	}
	t.Cleanup(func() {
		// Lazily if something still holds it, so t.TempDir can go.
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Logf("unmounting %s: %v; detaching", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// tmpfsUsed is how many bytes of the file system holding dir are in use.
func tmpfsUsed(t *testing.T, dir string) int64 {
	t.Helper()
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return int64(s.Blocks-s.Bfree) * s.Bsize
}

// fillUp writes a file until the file system is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			break
		}
	}
	// Whatever is left is less than a page: make sure not even that is.
	for {
		if _, err := f.Write([]byte{0}); err != nil {
			break
		}
	}
}

// assertNoOutput checks what a failed build must leave: no output
// directory, no QEMU, no temporary or work files (env.assertClean).
func assertNoOutput(t *testing.T, e *env, out string) {
	t.Helper()
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory %s exists after the failed build (%v)", out, err)
	}
	e.assertClean(t)
}

// assertTmpfsEmpty checks the tmpfs at mnt holds nothing and uses (next
// to) no space after the failed build.
func assertTmpfsEmpty(t *testing.T, mnt string) {
	t.Helper()
	assertEmptyDir(t, mnt)
	if used := tmpfsUsed(t, mnt); used > 64<<10 {
		t.Errorf("%d bytes still used on the tmpfs after the failed build", used)
	}
}

// assertEmptyDir checks dir exists and holds nothing.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		t.Errorf("%s is not empty after the failed build: %v", dir, names)
	}
}

// assertFailedIn checks the build failed, that the failure names step
// and that the output has every one of wants (case-insensitively).
func assertFailedIn(t *testing.T, code int, log, step string, wants ...string) {
	t.Helper()
	if code == 0 {
		t.Fatalf("build succeeded despite the fault:\n%s", log)
	}
	for _, w := range append([]string{step}, wants...) {
		if !strings.Contains(strings.ToLower(log), strings.ToLower(w)) {
			t.Errorf("output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", log)
	}
}

// TestFullDisk: the file system runs out of space and the build fails
// saying so, with nothing left on it.
func TestFullDisk(t *testing.T) {
	requireVM(t)

	// output_directory on a tmpfs that holds the working disk (a copy of the
	// guest image; kiln works in a hidden sibling of output_directory, so on
	// the same file system) but not the compacted copy written next to it
	// at the end: the build boots, provisions, shuts down and then hits
	// ENOSPC in disk.convert.
	t.Run("output", func(t *testing.T) {
		e := newEnv(t)
		fi, err := os.Stat(filepath.Join(guestDir, "guest.qcow2"))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		working := st.Blocks * 512
		size := (working + 6<<20 + 1<<20 - 1) &^ (1<<20 - 1)
		mnt := filepath.Join(e.Dir, "small")
		mountTmpfs(t, mnt, size)
		out := filepath.Join(mnt, "out")
		start := time.Now()
		k := e.start(t, "build", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("faults.pkr.hcl"))
		code, _ := k.wait(15 * time.Minute)
		t.Logf("tmpfs %d MiB (working disk %.1f MiB): kiln exited %d after %s", size>>20, float64(working)/(1<<20), code, time.Since(start).Round(time.Second))
		log := k.output()
		// It got as far as writing the output: provisioning finished.
		if !strings.Contains(log, "kiln-faults: shell-local ran") {
			t.Errorf("the build failed before the end of provisioning; the tmpfs is too small for this test:\n%s", log)
		}
		assertFailedIn(t, code, log, "error: disk.convert: ", "no space left on device")
		assertNoOutput(t, e, out)
		assertTmpfsEmpty(t, mnt)
	})

	// The same tmpfs, but the guest fills it first: a provisioner writes 30
	// MiB to the guest's disk, the working disk cannot grow and QEMU stops
	// the VM (its default werror=enospc). The build must fail at once and
	// say the host's disk is full, not time out on a silent guest.
	t.Run("working-disk", func(t *testing.T) {
		e := newEnv(t)
		fi, err := os.Stat(filepath.Join(guestDir, "guest.qcow2"))
		if err != nil {
			t.Fatal(err)
		}
		working := fi.Sys().(*syscall.Stat_t).Blocks * 512
		size := (working + 6<<20 + 1<<20 - 1) &^ (1<<20 - 1)
		mnt := filepath.Join(e.Dir, "small")
		mountTmpfs(t, mnt, size)
		out := filepath.Join(mnt, "out")
		k := e.start(t, "build", "-var", "fault=fill-disk", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("faults.pkr.hcl"))
		k.waitLine("kiln-faults: filling the disk", 10*time.Minute)
		code, took := k.wait(2 * time.Minute)
		t.Logf("tmpfs %d MiB: kiln exited %d %s after the guest started writing", size>>20, code, took.Round(100*time.Millisecond))
		if took > 30*time.Second {
			t.Errorf("kiln took %s to fail after the host disk filled up", took)
		}
		log := k.output()
		assertFailedIn(t, code, log, "error: provision: ", "QEMU stopped the VM on a disk error: write error", "no space left on device", "work directory", `shell provisioner "fault"`)
		if strings.Contains(log, "kiln-faults: last guest provisioner ran") {
			t.Errorf("provisioning went on after the disk filled up")
		}
		assertNoOutput(t, e, out)
		assertTmpfsEmpty(t, mnt)
	})

	// TMPDIR on a full tmpfs. kiln keeps only its runtime directory
	// (sockets, which take no space) and shell-local's scripts there, so the
	// build runs until the shell-local provisioner, whose script cannot be
	// written.
	t.Run("tmpdir", func(t *testing.T) {
		e := newEnv(t)
		mnt := filepath.Join(filepath.Dir(e.Dir), "small-tmp")
		mountTmpfs(t, mnt, 1<<20)
		e.TmpDir = filepath.Join(mnt, "tmp")
		if err := os.Mkdir(e.TmpDir, 0o755); err != nil {
			t.Fatal(err)
		}
		e.Environ = append(e.Environ, "TMPDIR="+e.TmpDir) // the last one wins
		filler := filepath.Join(mnt, "filler")
		fillUp(t, filler)
		out := filepath.Join(e.Dir, "out")
		start := time.Now()
		k := e.start(t, "build", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("faults.pkr.hcl"))
		code, _ := k.wait(15 * time.Minute)
		t.Logf("kiln exited %d after %s", code, time.Since(start).Round(time.Second))
		log := k.output()
		if !strings.Contains(log, "kiln-faults: last guest provisioner ran") {
			t.Errorf("the build failed before the shell-local provisioner")
		}
		assertFailedIn(t, code, log, "error: provision: ", "shell-local provisioner: writing temporary script", "no space left on device")
		assertNoOutput(t, e, out)
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		if used := tmpfsUsed(t, mnt); used > 64<<10 {
			t.Errorf("%d bytes still used on the tmpfs after the failed build", used)
		}
	})
}

// TestSSHDrop: the guest's SSH connection dies in the middle of a shell
// provisioner's command.
func TestSSHDrop(t *testing.T) {
	requireVM(t)

	// Without expect_disconnect (Packer's default) a dropped connection fails
	// the build at once, naming the provisioner, whether the connection
	// closed (sshd killed) or the guest just went silent (link down: only
	// keepalives notice, within three ssh_keep_alive_interval of 5 s).
	for _, tc := range []struct{ fault, line, why string }{
		{"kill-sshd", "kiln-faults: killing sshd", "command ended without an exit status"},
		{"link-down", "kiln-faults: taking eth0 down", "the guest stopped answering (no keepalive reply for 15s)"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.Dir, "out")
			k := e.start(t, "build", "-var", "fault="+tc.fault, "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("faults.pkr.hcl"))
			k.waitLine(tc.line, 10*time.Minute)
			code, took := k.wait(2 * time.Minute)
			t.Logf("kiln exited %d %s after the fault", code, took.Round(100*time.Millisecond))
			if took > time.Minute {
				t.Errorf("kiln took %s to fail after the SSH connection dropped", took)
			}
			log := k.output()
			assertFailedIn(t, code, log, `shell provisioner "fault"`, "connection to the guest lost: "+tc.why, "expect_disconnect")
			for _, not := range []string{"kiln-faults: last guest provisioner ran", "kiln-faults: shell-local ran"} {
				if strings.Contains(log, not) {
					t.Errorf("a provisioner ran after the connection dropped: %q", not)
				}
			}
			assertNoOutput(t, e, out)
		})
	}

	// With expect_disconnect = true a reboot mid-script is fine: kiln
	// reconnects to the rebooted guest and the next provisioners run.
	t.Run("reboot-expected", func(t *testing.T) {
		e := newEnv(t)
		out := filepath.Join(e.Dir, "out")
		start := time.Now()
		k := e.start(t, "build", "-var", "fault=reboot", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("faults.pkr.hcl"))
		code, _ := k.wait(15 * time.Minute)
		t.Logf("kiln exited %d after %s", code, time.Since(start).Round(time.Second))
		log := k.output()
		if code != 0 {
			t.Fatalf("build with expect_disconnect = true failed (%d):\n%s", code, log)
		}
		for _, want := range []string{"kiln-faults: rebooting", "disconnected, as expected", "kiln-faults: after reboot", "kiln-faults: shell-local ran"} {
			if !strings.Contains(log, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if strings.Contains(log, "kiln-faults: same boot") {
			t.Errorf("the guest did not reboot")
		}
		image := filepath.Join(out, e.Marker+"-faults")
		if got := readGuestFile(t, image, "faults.txt"); got != "provisioned\n" {
			t.Errorf("faults.txt in the image = %q, want the last provisioner's write", got)
		}
		e.assertClean(t)
	})
}
