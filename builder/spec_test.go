package builder

import (
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/hypervisor/qemu"
)

func baseConfig() *config.QEMU {
	return &config.QEMU{
		QEMUBinary: "qemu-system-x86_64", VMName: "vm", MachineType: "pc", CPUs: 2, Memory: 512,
		Format: "qcow2", WorkFormat: "qcow2", DiskInterface: "virtio", DiskCache: "writeback", DiskDiscard: "ignore",
		DiskDetectZeroes: "off", NetDevice: "virtio-net",
	}
}

func TestSpecDiskImageBootsFromDiskWithCPUMaxUnderTCG(t *testing.T) {
	c := baseConfig()
	c.DiskImage = true
	s := QEMUSpec(c, "tcg", Paths{Disks: []string{"/w/vm", "/w/vm-1"}, Source: "/cache/src.qcow2", RunDir: "/run/k"})
	if s.Boot != "c" || s.CPUModel != "max" || !s.Paused {
		t.Fatalf("boot=%q cpu=%q paused=%v", s.Boot, s.CPUModel, s.Paused)
	}
	if len(s.Drives) != 2 || s.Drives[1].Path != "/w/vm-1" || s.Drives[0].Media != "disk" {
		t.Fatalf("drives = %+v (the source image must not be attached: it was copied)", s.Drives)
	}
	if s.QMPSocket != "/run/k/qmp.sock" {
		t.Fatalf("paths: %+v", s)
	}
	argv, err := qemu.Args(s)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(argv, " ")
	for _, want := range []string{"-cpu max", "-S", "accel=tcg", "/w/vm-1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("command line lacks %q: %s", want, joined)
		}
	}
}

func TestSpecISOAttachesCDROMAndKeepsCPUModelUnderKVM(t *testing.T) {
	c := baseConfig()
	c.CPUModel = "host"
	s := QEMUSpec(c, "kvm", Paths{Disks: []string{"/w/vm"}, Source: "/cache/x.iso", RunDir: "/r"})
	if s.Boot != "once=d" || s.CPUModel != "host" {
		t.Fatalf("boot=%q cpu=%q", s.Boot, s.CPUModel)
	}
	last := s.Drives[len(s.Drives)-1]
	if last.Media != "cdrom" || last.Path != "/cache/x.iso" || !last.ReadOnly {
		t.Fatalf("cdrom drive = %+v", last)
	}
}

func TestSpecEFIDropsBootOrder(t *testing.T) {
	c := baseConfig()
	c.EFIBoot, c.EFICode, c.EFIVars = true, "/fw/code.fd", "/fw/vars.fd"
	s := QEMUSpec(c, "tcg", Paths{Disks: []string{"/w/vm"}, Source: "/x.iso", RunDir: "/r"})
	if s.Boot != "" || s.EFICode != "/fw/code.fd" {
		t.Fatalf("boot=%q code=%q", s.Boot, s.EFICode)
	}
	// The disk first, then the installer CD: OVMF skips the empty disk,
	// and boots the installed system after the installer reboots.
	if len(s.Drives) != 2 || s.Drives[0].BootIndex == nil || *s.Drives[0].BootIndex != 0 ||
		s.Drives[1].Media != "cdrom" || s.Drives[1].BootIndex == nil || *s.Drives[1].BootIndex != 1 {
		t.Fatalf("drives = %+v", s.Drives)
	}
}

func TestSpecEFIDiskImageHasNoBootIndex(t *testing.T) {
	c := baseConfig()
	c.EFIBoot, c.DiskImage = true, true
	s := QEMUSpec(c, "tcg", Paths{Disks: []string{"/w/vm"}, Source: "/x.qcow2", RunDir: "/r"})
	if len(s.Drives) != 1 || s.Drives[0].BootIndex != nil {
		t.Fatalf("drives = %+v", s.Drives)
	}
}
