package firmware

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixtures copies testdata/<set> for each set into a temporary directory,
// replacing "@FW@" in the descriptors with a directory where every
// firmware file they name exists (as a small dummy). It returns the
// descriptor directories, in the order given, and the firmware directory.
func fixtures(t *testing.T, sets ...string) ([]string, string) {
	t.Helper()
	tmp := t.TempDir()
	fw := filepath.Join(tmp, "fw")
	if err := os.Mkdir(fw, 0o755); err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`@FW@/([^"]+)`)
	var dirs []string
	for _, set := range sets {
		dir := filepath.Join(tmp, set)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join("testdata", set))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("testdata", set, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ref.FindAllSubmatch(b, -1) {
				if err := os.WriteFile(filepath.Join(fw, string(m[1])), []byte("firmware"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b = []byte(strings.ReplaceAll(string(b), "@FW@", fw))
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs, fw
}

func TestFind(t *testing.T) {
	dirs, fw := fixtures(t, "distro")
	d := dirs[0]
	cases := []struct {
		name          string
		arch, machine string
		secureBoot    bool
		want          Firmware
	}{
		{
			// 40 and 50 are q35-only, 55 has no vars file: the 2M build
			// that runs on i440fx wins.
			name: "pc", arch: "x86_64", machine: "pc",
			want: Firmware{Code: fw + "/OVMF_CODE.fd", Vars: fw + "/OVMF_VARS.fd", CodeFormat: "raw", VarsFormat: "raw",
				Descriptor: d + "/60-edk2-x86_64-2m.json"},
		},
		{
			name: "versioned i440fx, Go arch name", arch: "amd64", machine: "pc-i440fx-7.2",
			want: Firmware{Code: fw + "/OVMF_CODE.fd", Vars: fw + "/OVMF_VARS.fd", CodeFormat: "raw", VarsFormat: "raw",
				Descriptor: d + "/60-edk2-x86_64-2m.json"},
		},
		{
			name: "Packer's default machine", arch: "x86_64", machine: "",
			want: Firmware{Code: fw + "/OVMF_CODE.fd", Vars: fw + "/OVMF_VARS.fd", CodeFormat: "raw", VarsFormat: "raw",
				Descriptor: d + "/60-edk2-x86_64-2m.json"},
		},
		{
			// 40 is Secure Boot (not asked for); 50 is first without it.
			name: "q35 takes the qcow2 build", arch: "x86_64", machine: "q35,accel=tcg",
			want: Firmware{Code: fw + "/OVMF_CODE_4M.qcow2", Vars: fw + "/OVMF_VARS_4M.qcow2", CodeFormat: "qcow2", VarsFormat: "qcow2",
				Descriptor: d + "/50-edk2-x86_64-qcow2.json"},
		},
		{
			name: "q35 with Secure Boot", arch: "x86_64", machine: "pc-q35-7.2", secureBoot: true,
			want: Firmware{Code: fw + "/OVMF_CODE_4M.secboot.fd", Vars: fw + "/OVMF_VARS_4M.ms.fd", CodeFormat: "raw", VarsFormat: "raw",
				SecureBoot: true, EnrolledKeys: true, RequiresSMM: true, Descriptor: d + "/40-edk2-x86_64-secure-enrolled.json"},
		},
		{
			name: "aarch64 virt", arch: "arm64", machine: "virt",
			want: Firmware{Code: fw + "/AAVMF_CODE.fd", Vars: fw + "/AAVMF_VARS.fd", CodeFormat: "raw", VarsFormat: "raw",
				Descriptor: d + "/10-edk2-aarch64.json"},
		},
		{
			name: "aarch64 default machine", arch: "aarch64", machine: "",
			want: Firmware{Code: fw + "/AAVMF_CODE.fd", Vars: fw + "/AAVMF_VARS.fd", CodeFormat: "raw", VarsFormat: "raw",
				Descriptor: d + "/10-edk2-aarch64.json"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Find(c.arch, c.machine, c.secureBoot, dirs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Find(%q, %q, %v) (-want +got):\n%s", c.arch, c.machine, c.secureBoot, diff)
			}
		})
	}
}

func TestFindErrorExplainsEachDescriptor(t *testing.T) {
	dirs, _ := fixtures(t, "distro")
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Find("x86_64", "pc", true, append(dirs, missing))
	if err == nil {
		t.Fatal("Secure Boot on i440fx: no error")
	}
	for _, want := range []string{
		"x86_64 machine pc with Secure Boot",
		missing + " (missing)",
		"10-edk2-aarch64.json: architecture [aarch64], not x86_64",
		"20-seabios.json: interface [bios], not uefi",
		`30-edk2-x86_64-memory.json: device "memory", not flash`,
		"40-edk2-x86_64-secure-enrolled.json: machines [pc-q35-*] do not cover pc-i440fx-*",
		"50-edk2-x86_64-qcow2.json: machines [pc-q35-*] do not cover pc-i440fx-*",
		`55-edk2-x86_64-stateless.json: flash mode "stateless"`,
		"60-edk2-x86_64-2m.json: no Secure Boot",
		`needs a q35 machine`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestFindSecureBootFallback(t *testing.T) {
	dirs, fw := fixtures(t, "sbonly")
	// Not asked for Secure Boot, and only Secure Boot firmware exists: the
	// one without enrolled keys boots anything, the enrolled one would not.
	got, err := Find("x86_64", "q35", false, dirs)
	if err != nil {
		t.Fatal(err)
	}
	want := Firmware{Code: fw + "/OVMF_CODE_4M.secboot.fd", Vars: fw + "/OVMF_VARS_4M.fd", CodeFormat: "raw", VarsFormat: "raw",
		SecureBoot: true, RequiresSMM: true, Descriptor: dirs[0] + "/50-edk2-x86_64-secure.json"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fallback (-want +got):\n%s", diff)
	}
	// Asked for: priority order, the enrolled one first.
	got, err = Find("x86_64", "q35", true, dirs)
	if err != nil || !got.EnrolledKeys {
		t.Errorf("Secure Boot asked for: %+v, %v", got, err)
	}
}

func TestFindOverrides(t *testing.T) {
	// override is more specific than distro: its 60-... replaces distro's,
	// its empty 50-... hides distro's qcow2 build, its broken 55-... is
	// reported and skipped.
	dirs, fw := fixtures(t, "override", "distro")
	got, err := Find("x86_64", "q35", false, dirs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != fw+"/OVMF_CODE.local.fd" || got.Descriptor != dirs[0]+"/60-edk2-x86_64-2m.json" {
		t.Errorf("got %+v, want the override's 60-edk2-x86_64-2m.json", got)
	}

	// The reasons show in an error.
	_, err = Find("x86_64", "microvm", false, dirs)
	for _, want := range []string{
		dirs[0] + "/50-edk2-x86_64-qcow2.json: empty file",
		dirs[0] + "/55-broken.json: invalid descriptor",
		"machines [pc-i440fx-* pc-q35-*] do not cover microvm",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestFindMissingFirmwareFile(t *testing.T) {
	dirs, fw := fixtures(t, "distro")
	if err := os.Remove(fw + "/OVMF_VARS.fd"); err != nil {
		t.Fatal(err)
	}
	_, err := Find("x86_64", "pc", false, dirs)
	if err == nil || !strings.Contains(err.Error(), "60-edk2-x86_64-2m.json: firmware file missing") ||
		!strings.Contains(err.Error(), fw+"/OVMF_VARS.fd") {
		t.Errorf("got %v, want 60-... rejected for its missing vars file", err)
	}
}

func TestFindNoDescriptors(t *testing.T) {
	_, err := Find("x86_64", "pc", false, []string{t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no firmware descriptors found") {
		t.Errorf("got %v", err)
	}
}

func TestDefaultDirs(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	want := []string{"/cfg/qemu/firmware", "/etc/qemu/firmware", "/usr/share/qemu/firmware"}
	if diff := cmp.Diff(want, DefaultDirs()); diff != "" {
		t.Errorf("DefaultDirs (-want +got):\n%s", diff)
	}
}

// TestFindOnThisMachine checks the distribution's descriptors (package
// ovmf on Debian): the lookup kiln does by default must give files that
// exist.
func TestFindOnThisMachine(t *testing.T) {
	if _, err := os.Stat("/usr/share/qemu/firmware"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("no /usr/share/qemu/firmware (install ovmf)")
	}
	for _, machine := range []string{"pc", "q35"} {
		fw, err := Find("x86_64", machine, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{fw.Code, fw.Vars} {
			if st, err := os.Stat(p); err != nil || st.Size() == 0 {
				t.Errorf("%s: %s from %s: %v", machine, p, fw.Descriptor, err)
			}
		}
		if fw.SecureBoot {
			t.Errorf("%s: Secure Boot firmware %s chosen without asking", machine, fw.Descriptor)
		}
		t.Logf("%s: %+v", machine, fw)
	}
}
