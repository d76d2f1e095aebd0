package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/boot/firmware"
)

// installerDir is the cached installer ISO fixture.
func installerDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "testdata/installer/ensure.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("building the installer fixture: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestInstallFromISO types the boot command at the installer's GRUB prompt
// over QMP and over VNC, under BIOS and UEFI, or boots the ISO's kernel
// directly; the installer fetches its answer file from kiln's
// HTTP server, installs and powers off; the output image holds what the
// answer file wrote.
func TestInstallFromISO(t *testing.T) {
	requireVM(t)
	dir := installerDir(t)
	for _, tc := range []struct{ name, vars string }{
		{"bios-qmp", "transport=qmp"},
		{"bios-vnc", "transport=vnc"},
		{"uefi-qmp", "efi=true"},
		// kiln's boot_kernel: no typing, the kernel comes out of the ISO.
		{"direct-kernel", "kernel=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.Dir, "out")
			log := e.mustBuild(t, 10*time.Minute, "build", "-only=qemu.install", "-var", "installer_dir="+dir, "-var", "out="+out, "-var", "name="+e.Marker, "-var", tc.vars, template("install.pkr.hcl"))
			if !strings.Contains(log, "GET /ks.sh") {
				t.Errorf("the HTTP log does not show the answer file fetched:\n%s", log)
			}
			serials, _ := filepath.Glob(filepath.Join(e.LogDir, "*", "serial.log"))
			if len(serials) != 1 {
				t.Fatalf("serial logs: %v", serials)
			}
			serial, _ := os.ReadFile(serials[0])
			// The installer echoes /proc/cmdline: the typed text, shifted
			// characters included, must have arrived exactly.
			if !strings.Contains(string(serial), "kiln.typed=A_Z:b+c!d@e%f^g*h~i?j(k)l,m.n/o-p=q") {
				t.Errorf("typed text did not arrive exactly; serial log:\n%s", serial)
			}
			image := filepath.Join(out, "install", e.Marker+".qcow2")
			if got := readGuestFile(t, image, "installed-by.txt"); got != "installed by kiln: A_Z:b+c!d@e\n" {
				t.Errorf("installed-by.txt = %q", got)
			}
		})
	}
}

// TestInstallerNeverFetchesAnswerFile: a guest that never asks for its
// answer file fails the build at http_wait_fetched_timeout with that
// message and a screenshot, not at some far later timeout.
func TestInstallerNeverFetchesAnswerFile(t *testing.T) {
	requireVM(t)
	dir := installerDir(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	k := e.start(t, "build", "-only=qemu.install", "-var", "installer_dir="+dir, "-var", "out="+out, "-var", "name="+e.Marker,
		"-var", "answer_path=/nothing-here.sh", template("install.pkr.hcl"))
	code, _ := k.wait(5 * time.Minute)
	log := k.output()
	if code == 0 || !strings.Contains(log, "never fetched its answer file") || !strings.Contains(log, "/ks.sh") {
		t.Fatalf("want the never-fetched error, got exit %d:\n%s", code, log)
	}
	if !strings.Contains(log, "GET /nothing-here.sh 404") && !strings.Contains(log, "nothing-here.sh") {
		t.Errorf("the error does not show what the guest asked for:\n%s", log)
	}
	shots, _ := filepath.Glob(filepath.Join(e.LogDir, "*", "failure-screen.png"))
	if len(shots) != 1 {
		t.Errorf("no failure screenshot saved")
	}
	e.assertClean(t)
}

// TestInstallThenSSH is the usual installer path: the installer reboots
// into the installed system (under UEFI too: the disk's bootindex puts it
// before the installer CD), kiln logs in over SSH, provisions and shuts
// down; then the output image boots on its own.
func TestInstallThenSSH(t *testing.T) {
	requireVM(t)
	dir := installerDir(t)
	for _, efi := range []bool{false, true} {
		name := "bios"
		if efi {
			name = "uefi"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			out := filepath.Join(e.Dir, "out")
			log := e.mustBuild(t, 10*time.Minute, "build", "-only=qemu.install-ssh", "-var", "installer_dir="+dir, "-var", "out="+out,
				"-var", "name="+e.Marker, "-var", fmt.Sprintf("efi=%t", efi),
				"-var", "ssh_key="+filepath.Join(repoRoot, "testdata/guest/test_ed25519"), template("install.pkr.hcl"))
			serial := serialLog(t, e)
			// One boot of the installer, then the installed system: a
			// firmware that went back to the CD would show a second prompt.
			if n := strings.Count(serial, "kiln-installer: boot prompt ready"); n != 1 {
				t.Errorf("installer prompt seen %d times (want 1); serial log:\n%s", n, serial)
			}
			after := serial[strings.Index(serial, "kiln-installer: finish: reboot")+1:]
			if !strings.Contains(serial, "kiln-installer: finish: reboot") || !strings.Contains(after, "kiln-guest: sshd ready") {
				t.Errorf("the installed system did not come up after the reboot; serial log:\n%s", serial)
			}
			assertBootStepScreen(t, e)
			if !strings.Contains(log, "connected to SSH") {
				t.Errorf("no SSH connection in the build output:\n%s", log)
			}
			image := filepath.Join(out, "install-ssh", e.Marker+".qcow2")
			if got := readGuestFile(t, image, "installed-by.txt"); got != "installed by kiln: A_Z:b+c!d@e\n" {
				t.Errorf("installed-by.txt = %q", got)
			}
			if got := readGuestFile(t, image, "provisioned.txt"); got != "provisioned after install\n" {
				t.Errorf("provisioned.txt = %q", got)
			}
			bootImage(t, e, image, efi)
		})
	}
}

// serialLog returns the one build's saved serial console.
func serialLog(t *testing.T, e *env) string {
	t.Helper()
	serials, _ := filepath.Glob(filepath.Join(e.LogDir, "*", "serial.log"))
	if len(serials) != 1 {
		t.Fatalf("serial logs: %v", serials)
	}
	b, err := os.ReadFile(serials[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bootImage boots a build's output image on its own (a copy, with a fresh
// UEFI variable store when efi) and waits for the guest's sshd.
func bootImage(t *testing.T, e *env, image string, efi bool) {
	t.Helper()
	tmp := t.TempDir()
	disk := filepath.Join(tmp, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", image, disk).CombinedOutput(); err != nil {
		t.Fatalf("overlay on %s: %v\n%s", image, err, out)
	}
	serial := filepath.Join(tmp, "serial.log")
	args := []string{"-name", e.Marker + "-boot", "-machine", "pc,accel=tcg", "-cpu", "max", "-m", "512",
		"-drive", "file=" + disk + ",if=virtio,format=qcow2", "-netdev", "user,id=n0", "-device", "virtio-net,netdev=n0",
		"-display", "none", "-serial", "file:" + serial}
	if efi {
		fw, err := firmware.Find("x86_64", "pc", false, firmware.DefaultDirs())
		if err != nil {
			t.Fatal(err)
		}
		vars := filepath.Join(tmp, "vars.fd")
		if out, err := exec.Command("cp", fw.Vars, vars).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		args = append(args, "-drive", "file="+fw.Code+",if=pflash,unit=0,format="+fw.CodeFormat+",readonly=on",
			"-drive", "file="+vars+",if=pflash,unit=1,format="+fw.VarsFormat)
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	deadline := time.After(5 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("QEMU exited booting %s: %v\n%s", image, err, stderr.String())
		case <-deadline:
			b, _ := os.ReadFile(serial)
			t.Fatalf("the output image %s did not boot to sshd in 5m; serial:\n%s", image, b)
		case <-tick.C:
			if b, _ := os.ReadFile(serial); strings.Contains(string(b), "kiln-guest: sshd ready") {
				return
			}
		}
	}
}
