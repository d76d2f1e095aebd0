package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
			k := e.start(t, "build", "-var", "installer_dir="+dir, "-var", "out="+out, "-var", "name="+e.Marker, "-var", tc.vars, template("install.pkr.hcl"))
			code, _ := k.wait(10 * time.Minute)
			log := k.output()
			if code != 0 {
				t.Fatalf("kiln build exited %d:\n%s", code, log)
			}
			e.assertClean(t)
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
	k := e.start(t, "build", "-var", "installer_dir="+dir, "-var", "out="+out, "-var", "name="+e.Marker,
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
