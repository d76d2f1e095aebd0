package libvirt

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/internal/testutil"
)

func TestDomainXMLGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec DomainSpec
	}{
		{"bios-disk-image", DomainSpec{
			Name: "kiln-e2e-0a1b2c3d", Type: "qemu", MemoryMiB: 256, VCPUs: 1, CPUModel: "max",
			Disks:   []Volume{{Pool: "default", Name: "kiln-e2e-0a1b2c3d.qcow2", Format: "qcow2"}},
			Network: "kiln-e2e", SerialLog: "/var/log/libvirt/qemu/kiln-e2e-serial.log",
		}},
		{"uefi-iso-install", DomainSpec{
			Name: "kiln-debian-deadbeef", Type: "kvm", MemoryMiB: 2048, VCPUs: 2, Machine: "q35", CPUModel: "host-passthrough",
			UEFI: true, BootCDROM: true,
			Disks:  []Volume{{Pool: "images", Name: "main.raw", Format: "raw"}, {Pool: "images", Name: "extra.raw", Format: "raw"}},
			CDROMs: []Volume{{Pool: "images", Name: "installer.iso", Format: "raw"}},
			MAC:    "52:54:00:12:34:56", VNC: true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DomainXML(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, filepath.Join("testdata", tc.name+".xml"), []byte(got+"\n"))
		})
	}
}

func TestDomainXMLRejects(t *testing.T) {
	ok := DomainSpec{Name: "kiln-x", Type: "qemu", MemoryMiB: 64, VCPUs: 1}
	for name, mut := range map[string]func(*DomainSpec){
		"type":   func(s *DomainSpec) { s.Type = "xen" },
		"name":   func(s *DomainSpec) { s.Name = "a/b" },
		"memory": func(s *DomainSpec) { s.MemoryMiB = 0 },
		"bus":    func(s *DomainSpec) { s.DiskBus = "floppy" },
	} {
		s := ok
		mut(&s)
		if _, err := DomainXML(s); err == nil {
			t.Errorf("%s: accepted %+v", name, s)
		}
	}
	if _, err := DomainXML(ok); err != nil {
		t.Fatal(err)
	}
}

func TestDomainName(t *testing.T) {
	a, b := DomainName("e2e.libvirt.qcow2"), DomainName("e2e.libvirt.qcow2")
	if a == b {
		t.Fatalf("two names are equal: %s", a)
	}
	if !strings.HasPrefix(a, "kiln-e2e-libvirt-qcow2-") || !validName.MatchString(a) {
		t.Fatalf("bad name %q", a)
	}
}
