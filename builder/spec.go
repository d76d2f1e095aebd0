package builder

import (
	"path/filepath"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/hypervisor/qemu"
)

// Paths are the runtime locations a QEMU command line refers to.
type Paths struct {
	Disks  []string
	Source string   // ISO (or disk image) path
	RunDir string   // sockets
	CDs    []string // extra CD images (cd_files / cd_content)
	Kernel string   // boot_kernel extracted from the ISO
	Initrd string
	Append string // rendered boot_kernel_args
	VNC    string // -vnc value when keys are typed over VNC
}

// QEMUSpec maps a template's qemu source to the QEMU command line inputs.
// It is pure: the same config, accelerator and paths give the same Spec.
func QEMUSpec(c *config.QEMU, accel string, p Paths) qemu.Spec {
	s := qemu.Spec{
		Binary:         c.QEMUBinary,
		Name:           c.VMName,
		Machine:        c.MachineType,
		Accel:          accel,
		CPUs:           c.CPUs,
		MemoryMB:       c.Memory,
		CPUModel:       c.CPUModel,
		CDROMInterface: c.CDROMInterface,
		Firmware:       c.Firmware,
		QMPSocket:      filepath.Join(p.RunDir, "qmp.sock"),
		SerialSocket:   filepath.Join(p.RunDir, "serial.sock"),
		NetDevice:      c.NetDevice,
		Display:        c.Display,
		VGA:            c.VGA,
		Paused:         true,
		ExtraArgs:      c.QEMUArgs,
	}
	for _, d := range p.Disks {
		s.Drives = append(s.Drives, qemu.Drive{
			Path:         d,
			Format:       c.WorkFormat,
			Interface:    c.DiskInterface,
			Cache:        c.DiskCache,
			Discard:      c.DiskDiscard,
			DetectZeroes: c.DiskDetectZeroes,
			Media:        "disk",
		})
	}
	switch {
	case c.DiskImage:
		s.Boot = "c"
	default:
		s.Drives = append(s.Drives, qemu.Drive{Path: p.Source, Format: "raw", Interface: c.CDROMInterface, Media: "cdrom", ReadOnly: true})
		s.Boot = "once=d"
	}
	for _, cd := range p.CDs {
		s.Drives = append(s.Drives, qemu.Drive{Path: cd, Format: "raw", Interface: c.CDROMInterface, Media: "cdrom", ReadOnly: true})
	}
	if p.Kernel != "" {
		s.Kernel, s.Initrd, s.Append = p.Kernel, p.Initrd, p.Append
		s.Boot = ""
	}
	s.VNC = p.VNC
	if c.EFIBoot {
		// Packer drops -boot with EFI, and OVMF would boot the installer
		// CD again after the installer reboots. kiln puts the main disk
		// first by bootindex (OVMF skips it while it is empty) and the
		// ISO second, so the reboot lands in the installed system.
		if s.Boot == "once=d" && len(p.Disks) > 0 {
			s.Drives[0].BootIndex = bootIndex(0)
			s.Drives[len(p.Disks)].BootIndex = bootIndex(1)
		}
		s.Boot = ""
		s.EFICode = c.EFICode
		s.EFIVars = c.EFIVars
	}
	// TCG without -cpu max leaves guests starved of entropy (sshd's banner
	// arrives 10-26 s late); a template's cpu_model still wins.
	if s.CPUModel == "" && accel == "tcg" {
		s.CPUModel = "max"
	}
	return s
}

func bootIndex(n int) *int { return &n }
