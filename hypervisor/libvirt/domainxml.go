package libvirt

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// DomainSpec is what a build VM looks like. Disks and CD-ROMs are storage
// volumes, never host paths, so the same spec works on a remote host.
type DomainSpec struct {
	Name      string
	Type      string // "kvm" or "qemu" (TCG)
	MemoryMiB int
	VCPUs     int
	Machine   string // e.g. "q35"; empty means the hypervisor's default ("pc")
	CPUModel  string // "host-passthrough", "max" (TCG), or a named model; empty: libvirt's default
	UEFI      bool   // <os firmware="efi">: libvirt picks OVMF from the host's descriptors
	Disks     []Volume
	CDROMs    []Volume
	// BootCDROM makes the first CD-ROM bootable (ISO installs). It comes
	// after the main disk, which firmware skips while it is blank, so an
	// installer's reboot lands on the installed system (as kiln's qemu
	// builder does with bootindex).
	BootCDROM bool
	DiskBus   string // "virtio" (default), "sata", "scsi", "ide"
	Network   string // libvirt network name; empty means "default"
	NetModel  string // "virtio" (default), "e1000", ...
	MAC       string // optional; found in DHCP leases to learn the guest's IP
	// SerialLog, if set, is a file on the libvirt host that also receives
	// the serial console (the console itself is a pty, read over the
	// connection with Domain.Console).
	SerialLog string
	// Kernel, Initrd and Cmdline boot a kernel directly. They are paths
	// on the libvirt host (upload them as volumes and use VolumePath).
	Kernel, Initrd, Cmdline string
	VNC                     bool   // a VNC display with an automatically chosen port
	VNCListen               string // VNC listen address; empty means 127.0.0.1
}

// Volume names a storage volume and its format.
type Volume struct {
	Pool, Name, Format string
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// DomainName makes a unique, libvirt-safe domain name: kiln-BUILD-RANDOM.
// The random part lets parallel builds of one template share a host, and
// the prefix lets an operator find (and clean up) kiln's domains.
func DomainName(build string) string {
	b := make([]byte, 4)
	rand.Read(b)
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, build)
	if len(clean) > 40 {
		clean = clean[:40]
	}
	return "kiln-" + clean + "-" + hex.EncodeToString(b)
}

// DomainXML renders spec as libvirt domain XML. It is a pure function:
// golden tests pin its output.
func DomainXML(s DomainSpec) (string, error) {
	if !validName.MatchString(s.Name) {
		return "", fmt.Errorf("invalid domain name %q", s.Name)
	}
	switch s.Type {
	case "kvm", "qemu":
	default:
		return "", fmt.Errorf("domain type %q: want kvm or qemu", s.Type)
	}
	if s.MemoryMiB <= 0 || s.VCPUs <= 0 {
		return "", fmt.Errorf("memory (%d MiB) and vcpus (%d) must be positive", s.MemoryMiB, s.VCPUs)
	}
	bus := s.DiskBus
	if bus == "" {
		bus = "virtio"
	}
	d := &libvirtxml.Domain{
		Type:   s.Type,
		Name:   s.Name,
		Memory: &libvirtxml.DomainMemory{Value: uint(s.MemoryMiB), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: uint(s.VCPUs)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: s.Machine, Type: "hvm"},
		},
		Features: &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{},
	}
	if s.UEFI {
		d.OS.Firmware = "efi"
	}
	d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline = s.Kernel, s.Initrd, s.Cmdline
	switch s.CPUModel {
	case "":
	case "host-passthrough", "host-model", "maximum":
		d.CPU = &libvirtxml.DomainCPU{Mode: s.CPUModel}
	case "max":
		d.CPU = &libvirtxml.DomainCPU{Mode: "maximum"}
	default:
		d.CPU = &libvirtxml.DomainCPU{Mode: "custom", Model: &libvirtxml.DomainCPUModel{Value: s.CPUModel}}
	}
	prefix := map[string]string{"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}[bus]
	if prefix == "" {
		return "", fmt.Errorf("disk bus %q: want virtio, sata, scsi or ide", bus)
	}
	for i, v := range s.Disks {
		disk := libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: v.Format, Discard: "unmap"},
			Source: &libvirtxml.DomainDiskSource{Volume: &libvirtxml.DomainDiskSourceVolume{Pool: v.Pool, Volume: v.Name}},
			Target: &libvirtxml.DomainDiskTarget{Dev: prefix + string(rune('a'+i)), Bus: bus},
		}
		if i == 0 {
			disk.Boot = &libvirtxml.DomainDeviceBoot{Order: 1}
		}
		d.Devices.Disks = append(d.Devices.Disks, disk)
	}
	// CD-ROMs go on SATA (q35) or IDE (pc): both boot under SeaBIOS and OVMF.
	cdBus := "ide"
	if strings.HasPrefix(s.Machine, "q35") || strings.HasPrefix(s.Machine, "pc-q35") {
		cdBus = "sata"
	}
	cdPrefix := map[string]string{"ide": "hd", "sata": "sd"}[cdBus]
	first := 0
	if bus == cdBus || (cdPrefix == prefix) {
		first = len(s.Disks)
	}
	for i, v := range s.CDROMs {
		cd := libvirtxml.DomainDisk{
			Device:   "cdrom",
			Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
			Source:   &libvirtxml.DomainDiskSource{Volume: &libvirtxml.DomainDiskSourceVolume{Pool: v.Pool, Volume: v.Name}},
			Target:   &libvirtxml.DomainDiskTarget{Dev: cdPrefix + string(rune('a'+first+i)), Bus: cdBus},
			ReadOnly: &libvirtxml.DomainDiskReadOnly{},
		}
		if i == 0 && s.BootCDROM {
			cd.Boot = &libvirtxml.DomainDeviceBoot{Order: 2}
		}
		d.Devices.Disks = append(d.Devices.Disks, cd)
	}
	network, model := s.Network, s.NetModel
	if network == "" {
		network = "default"
	}
	if model == "" {
		model = "virtio"
	}
	iface := libvirtxml.DomainInterface{
		Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: network}},
		Model:  &libvirtxml.DomainInterfaceModel{Type: model},
	}
	if s.MAC != "" {
		iface.MAC = &libvirtxml.DomainInterfaceMAC{Address: s.MAC}
	}
	d.Devices.Interfaces = []libvirtxml.DomainInterface{iface}

	port := uint(0)
	serial := libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}
	if s.SerialLog != "" {
		serial.Log = &libvirtxml.DomainChardevLog{File: s.SerialLog, Append: "off"}
	}
	d.Devices.Serials = []libvirtxml.DomainSerial{serial}
	d.Devices.Consoles = []libvirtxml.DomainConsole{{
		Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port},
	}}
	if s.VNC {
		listen := s.VNCListen
		if listen == "" {
			listen = "127.0.0.1"
		}
		d.Devices.Graphics = []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{
			AutoPort:  "yes",
			Listeners: []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: listen}}},
		}}}
		d.Devices.Videos = []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: "vga"}}}
	}
	// No guest agent channel: libvirt 9.0 hung defining, and then
	// crashed loading, a unix channel without a path. Address still asks
	// an agent a template's domain may have, after the DHCP leases.
	// A guest asking for entropy must not stall sshd under TCG.
	d.Devices.RNGs = []libvirtxml.DomainRNG{{
		Model:   "virtio",
		Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
	}}
	return d.Marshal()
}
