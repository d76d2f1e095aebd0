package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func template(name string) string { return filepath.Join(repoRoot, "testdata", "e2e", name) }

// TestBuildQcow2AndRaw is the whole path: boot the guest, SSH, shell and
// file provisioners (upload and download), shell-local, clean shutdown,
// qcow2 and raw outputs; then the provisioners' changes are read back out
// of the output images themselves.
func TestBuildQcow2AndRaw(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	log := e.mustBuild(t, 15*time.Minute, "build", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.pkr.hcl"))

	assertE2EBuilt(t, out, e.Marker)
	for _, src := range []string{"qcow2", "raw"} {
		// Only the image: no work files, no logs in the output directory.
		entries, _ := os.ReadDir(filepath.Join(out, src))
		if len(entries) != 1 {
			t.Errorf("%s output directory holds %d entries, want just the image", src, len(entries))
		}
	}
	for _, want := range []string{"kiln-e2e: provisioning qcow2", "kiln-e2e: check.sh ran for raw", "Builds finished"} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The sensitive root password never reaches the terminal or the logs.
	debug, _ := os.ReadFile(filepath.Join(filepath.Dir(e.Dir), "debug.log"))
	if !strings.Contains(string(debug), "qemu command line") || !strings.Contains(string(debug), `execute\":\"cont`) {
		t.Errorf("debug log lacks the QEMU command line or the QMP exchange")
	}
	for name, text := range map[string]string{"output": log, "debug log": string(debug)} {
		if strings.Contains(text, "kiln-root-pw-3f9a") {
			t.Errorf("%s shows the ssh password", name)
		}
	}
	serials, _ := filepath.Glob(filepath.Join(e.LogDir, "*", "serial.log"))
	if len(serials) != 2 {
		t.Fatalf("want 2 saved serial logs, got %v", serials)
	}
	if b, _ := os.ReadFile(serials[0]); !strings.Contains(string(b), "kiln-guest: sshd ready") {
		t.Errorf("serial log %s lacks the guest's boot output", serials[0])
	}
}

// TestQEMUKilledDuringProvisioning: a QEMU crash fails the build at once,
// with QEMU's exit status, and leaves nothing behind.
func TestQEMUKilledDuringProvisioning(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	k := e.start(t, "build", "-only", "*qcow2", "-var", "fault=hang", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.pkr.hcl"))
	k.waitLine("kiln-e2e: hanging now", 5*time.Minute)
	pids := qemuPids(e.Marker)
	if len(pids) != 1 {
		t.Fatalf("want one QEMU process, got %v", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	code, took := k.wait(time.Minute)
	if code == 0 {
		t.Fatalf("build succeeded after QEMU was killed:\n%s", k.output())
	}
	if took > 5*time.Second {
		t.Errorf("kiln took %s to notice QEMU died", took)
	}
	if log := k.output(); !strings.Contains(log, "QEMU exited") || !strings.Contains(log, "killed") {
		t.Errorf("error does not say QEMU died (and how):\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(out, "qcow2")); !os.IsNotExist(err) {
		t.Errorf("output directory exists after a failed build")
	}
	e.assertClean(t)
}

// TestInterruptDuringBoot: Ctrl-C while waiting for SSH stops QEMU, removes
// temporary files and exits non-zero.
func TestInterruptDuringBoot(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	k := e.start(t, "build", "-only", "*raw", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.pkr.hcl"))
	k.waitLine("Waiting for SSH", 5*time.Minute)
	if len(qemuPids(e.Marker)) != 1 {
		t.Fatalf("QEMU not running while waiting for SSH")
	}
	k.cmd.Process.Signal(os.Interrupt)
	code, took := k.wait(time.Minute)
	if code == 0 {
		t.Fatalf("interrupted build exited 0:\n%s", k.output())
	}
	if took > 10*time.Second {
		t.Errorf("kiln took %s to stop after Ctrl-C", took)
	}
	if !strings.Contains(k.output(), "interrupted") {
		t.Errorf("output does not say the build was interrupted:\n%s", k.output())
	}
	if _, err := os.Stat(filepath.Join(out, "raw")); !os.IsNotExist(err) {
		t.Errorf("output directory exists after an interrupted build")
	}
	e.assertClean(t)
}

// TestBadChecksum: a source whose checksum does not match never boots.
func TestBadChecksum(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	bad := "sha256:" + strings.Repeat("ab", 32)
	k := e.start(t, "build", "-var", "checksum="+bad, "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.pkr.hcl"))
	code, _ := k.wait(time.Minute)
	log := k.output()
	if code == 0 || !strings.Contains(log, "checksum") || !strings.Contains(log, strings.Repeat("ab", 32)) {
		t.Fatalf("want a checksum error naming the expected sum, got exit %d:\n%s", code, log)
	}
	if strings.Contains(log, "Starting QEMU") {
		t.Errorf("QEMU was started despite the bad checksum")
	}
	if _, err := os.Stat(out); err == nil {
		if entries, _ := os.ReadDir(out); len(entries) > 0 {
			t.Errorf("output left after a failed build: %v", entries)
		}
	}
	e.assertClean(t)
}

// TestMalformedTemplate: a syntax error names file:line:column.
func TestMalformedTemplate(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	k := e.start(t, "build", template("malformed.pkr.hcl"))
	code, _ := k.wait(time.Minute)
	log := k.output()
	if code == 0 || !strings.Contains(log, "malformed.pkr.hcl:5:15") {
		t.Fatalf("want an error at malformed.pkr.hcl:5:15, got exit %d:\n%s", code, log)
	}
	e.assertClean(t)
}

// TestExistingOutputNeedsForce: Packer's rule, checked before any work.
func TestExistingOutputNeedsForce(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	os.MkdirAll(filepath.Join(out, "raw"), 0o755)
	k := e.start(t, "build", "-only", "*raw", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.pkr.hcl"))
	code, _ := k.wait(time.Minute)
	if log := k.output(); code == 0 || !strings.Contains(log, "already exists") || !strings.Contains(log, "-force") {
		t.Fatalf("want a refusal mentioning -force, got exit %d:\n%s", code, log)
	}
	e.assertClean(t)
}

// TestOnErrorAbortKeepsVM: -on-error=abort keeps the VM running and says how
// to reach it; Ctrl-C then stops QEMU, keeping only the disk.
func TestOnErrorAbortKeepsVM(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	k := e.start(t, "build", "-on-error=abort", "-only", "*qcow2", "-var", "fault=fail", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.pkr.hcl"))
	k.waitLine("press Ctrl-C", 5*time.Minute)
	log := k.output()
	for _, want := range []string{"exited with code 3", "ssh -p ", "serial console log: ", "kept after exit"} {
		if !strings.Contains(log, want) {
			t.Errorf("abort output lacks %q:\n%s", want, log)
		}
	}
	if len(qemuPids(e.Marker)) != 1 {
		t.Fatalf("QEMU is not kept running with -on-error=abort")
	}
	k.cmd.Process.Signal(os.Interrupt)
	if code, _ := k.wait(time.Minute); code == 0 {
		t.Fatalf("failed build exited 0")
	}
	time.Sleep(200 * time.Millisecond)
	if pids := qemuPids(e.Marker); len(pids) > 0 {
		t.Errorf("QEMU left running after Ctrl-C: %v", pids)
	}
	kept, _ := filepath.Glob(filepath.Join(e.Dir, "out", ".kiln-qcow2-*", e.Marker+"-qcow2"))
	if len(kept) != 1 {
		t.Errorf("the disk was not kept for inspection")
	}
	if _, err := os.Stat(filepath.Join(out, "qcow2")); !os.IsNotExist(err) {
		t.Errorf("output directory exists after a failed build")
	}
}

// assertE2EBuilt checks what testdata/e2e/build.pkr.hcl (and its JSON twin)
// produce in out: both images in their format, every provisioner's change
// read back out of the image itself, the file provisioner's download, the
// shell-local file, a checksum per build and one manifest for both.
func assertE2EBuilt(t *testing.T, out, marker string) {
	t.Helper()
	for _, tc := range []struct{ source, format string }{{"qcow2", "qcow2"}, {"raw", "raw"}} {
		image := filepath.Join(out, tc.source, marker+"-"+tc.source)
		info, err := exec.Command("qemu-img", "info", image).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", image, err, info)
		}
		if !strings.Contains(string(info), "file format: "+tc.format) {
			t.Errorf("%s is not %s:\n%s", image, tc.format, info)
		}
		if got := readGuestFile(t, image, "provisioned.txt"); got != "provisioned by "+tc.source+"\n" {
			t.Errorf("%s: provisioned.txt = %q", tc.source, got)
		}
		if got := readGuestFile(t, image, "payload.txt"); got != "payload uploaded by the file provisioner\n" {
			t.Errorf("%s: payload.txt = %q", tc.source, got)
		}
		if got := readGuestFile(t, image, "env.txt"); got != "hello world, it's kiln|"+tc.source+"\n" {
			t.Errorf("%s: env.txt = %q (environment_vars not passed intact)", tc.source, got)
		}
		if b, err := os.ReadFile(filepath.Join(out, "downloaded-"+tc.source+".txt")); err != nil || string(b) != "provisioned by "+tc.source+"\n" {
			t.Errorf("%s: file download: %q %v", tc.source, b, err)
		}
		if b, err := os.ReadFile(filepath.Join(out, "local-"+tc.source+".txt")); err != nil || !strings.Contains(string(b), "local "+tc.source) {
			t.Errorf("%s: shell-local: %q %v", tc.source, b, err)
		}
		sum, err := os.ReadFile(filepath.Join(out, tc.source+".sha256"))
		want, _ := exec.Command("sha256sum", image).Output()
		if err != nil || len(want) < 64 || !strings.HasPrefix(string(sum), string(want[:64])) {
			t.Errorf("checksum post-processor for %s: %q (want %.64s) %v", tc.source, sum, want, err)
		}
	}
	m, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil || strings.Count(string(m), `"builder_type": "qemu"`) != 2 || !strings.Contains(string(m), `"name": "qcow2"`) {
		t.Errorf("manifest post-processor: %s %v", m, err)
	}
}
