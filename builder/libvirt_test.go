package builder

import (
	"testing"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/hypervisor/libvirt"
)

func TestDomainSpecFromTemplate(t *testing.T) {
	disks := []libvirt.Volume{{Pool: "p", Name: "d0", Format: "qcow2"}}
	cds := []libvirt.Volume{{Pool: "p", Name: "cd0", Format: "raw"}}
	lv := &config.Libvirt{StoragePool: "p", Network: "builds"}

	// A TCG qemu source: domain type qemu, -cpu max equivalent, virtio.
	q := &config.QEMU{Accelerator: "tcg", Memory: 256, CPUs: 1, MachineType: "pc", DiskImage: true, VNCBindAddress: "127.0.0.1"}
	s := domainSpec(q, lv, "kiln-x-1", disks, nil)
	if s.Type != "qemu" || s.CPUModel != "max" || s.DiskBus != "virtio" || s.NetModel != "virtio" || s.Machine != "" ||
		s.Network != "builds" || s.BootCDROM || s.MemoryMiB != 256 || s.VCPUs != 1 {
		t.Errorf("tcg disk-image spec: %+v", s)
	}
	if _, err := libvirt.DomainXML(s); err != nil {
		t.Errorf("spec does not render: %v", err)
	}

	// An ISO install on KVM with UEFI, q35 and virtio-scsi; domain_type
	// wins over accelerator.
	q = &config.QEMU{Accelerator: "tcg", Memory: 2048, CPUs: 2, MachineType: "q35", EFIBoot: true, DiskInterface: "virtio-scsi", NetDevice: "e1000"}
	lv2 := *lv
	lv2.DomainType = "kvm"
	s = domainSpec(q, &lv2, "kiln-y-2", disks, cds)
	if s.Type != "kvm" || s.CPUModel != "" || !s.UEFI || s.Machine != "q35" || s.DiskBus != "scsi" || s.NetModel != "e1000" || !s.BootCDROM || len(s.CDROMs) != 1 {
		t.Errorf("kvm iso spec: %+v", s)
	}
}

func TestLibvirtURIHelpers(t *testing.T) {
	for uri, local := range map[string]bool{
		"qemu:///system":                        true,
		"qemu+ssh://root@127.0.0.1:2222/system": true,
		"qemu+ssh://builder@kvm1/system":        false,
		"qemu+tcp://10.0.0.2/system":            false,
	} {
		if got := isLocalURI(uri); got != local {
			t.Errorf("isLocalURI(%s) = %v", uri, got)
		}
	}
	if got := redactURI("qemu+ssh://u:secret@h/system"); got != "qemu+ssh://u:xxxxx@h/system" {
		t.Errorf("redactURI = %s", got)
	}
}
