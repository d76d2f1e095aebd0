package qemu

import (
	"fmt"
	"strconv"
	"strings"
)

// esc escapes a value for QEMU's key=value,key=value option syntax, where
// a literal comma is written twice.
func esc(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// driveArgs returns the -drive and -device values for s.Drives and the EFI
// flash. The layout follows Packer's getDeviceAndDriveArgs (option order
// file, if, cache, discard, format, detect-zeroes; ids driveN/cdromN; one
// virtio-scsi-pci controller "scsi0"), except where Packer's output does
// not start QEMU; those places are marked.
func driveArgs(s Spec) (drives, devices []string, err error) {
	var nDisk, nCD, nSATA int
	scsiCtl, ahciCtl := false, false
	for i, d := range s.Drives {
		if d.Path == "" {
			return nil, nil, fmt.Errorf("drive %d: no path", i)
		}
		var cdrom bool
		switch d.Media {
		case "", "disk":
		case "cdrom":
			cdrom = true
		default:
			return nil, nil, fmt.Errorf("drive %d (%s): unknown media %q (want disk or cdrom)", i, d.Path, d.Media)
		}
		iface := d.Interface
		if cdrom && iface == "" {
			iface = s.CDROMInterface
		}
		var id string
		if cdrom {
			id = "cdrom" + strconv.Itoa(nCD)
			nCD++
		} else {
			id = "drive" + strconv.Itoa(nDisk)
			nDisk++
		}

		opts := []string{"file=" + esc(d.Path)}
		bootindex := ""
		if d.BootIndex != nil {
			bootindex = ",bootindex=" + strconv.Itoa(*d.BootIndex)
		}
		switch {
		case bootindex != "" && (iface == "" || iface == "ide" || iface == "virtio"):
			// bootindex is a device property: the drive becomes if=none
			// plus an explicit device (the bus is picked by QEMU).
			dev := "ide-hd"
			switch {
			case iface == "virtio":
				dev = "virtio-blk-pci"
			case cdrom:
				dev = "ide-cd"
			}
			devices = append(devices, dev+",drive="+id+bootindex)
			opts = append(opts, "if=none", "id="+id)
			iface = "-" // handled
		}
		switch iface {
		case "-":
		case "":
			// QEMU's default bus (IDE on pc and q35).
		case "virtio", "ide", "scsi", "sd":
			opts = append(opts, "if="+iface)
			if cdrom {
				// Packer adds index=N here, which collides with an IDE
				// disk already at index 0; QEMU picks a free unit itself.
				opts = append(opts, "id="+id)
			}
		case "virtio-scsi":
			if !scsiCtl {
				devices = append(devices, "virtio-scsi-pci,id=scsi0")
				scsiCtl = true
			}
			// Packer attaches CD-ROMs here through a "virtio-scsi-device"
			// (the virtio-mmio flavour, which has no bus on pc/q35); kiln
			// puts them on the same controller as the disks.
			dev := "scsi-hd"
			if cdrom {
				dev = "scsi-cd"
			}
			devices = append(devices, dev+",bus=scsi0.0,drive="+id+bootindex)
			opts = append(opts, "if=none", "id="+id)
		case "sata":
			// Packer passes if=sata, which QEMU rejects ("unsupported bus
			// type 'sata'"): SATA is an AHCI controller plus ide-hd/ide-cd
			// devices, one per port.
			if !ahciCtl {
				devices = append(devices, "ahci,id=ahci0")
				ahciCtl = true
			}
			if nSATA == 6 {
				return nil, nil, fmt.Errorf("drive %d (%s): more than 6 SATA drives (one AHCI controller)", i, d.Path)
			}
			dev := "ide-hd"
			if cdrom {
				dev = "ide-cd"
			}
			devices = append(devices, dev+",bus=ahci0."+strconv.Itoa(nSATA)+",drive="+id+bootindex)
			nSATA++
			opts = append(opts, "if=none", "id="+id)
		default:
			return nil, nil, fmt.Errorf("drive %d (%s): unknown interface %q (want virtio, ide, sata, scsi, virtio-scsi or sd)", i, d.Path, iface)
		}
		if d.Cache != "" {
			opts = append(opts, "cache="+d.Cache)
		}
		if d.Discard != "" {
			opts = append(opts, "discard="+d.Discard)
		}
		if d.Format != "" {
			opts = append(opts, "format="+d.Format)
		}
		if d.DetectZeroes != "" && d.DetectZeroes != "off" {
			opts = append(opts, "detect-zeroes="+d.DetectZeroes)
		}
		if cdrom {
			opts = append(opts, "media=cdrom")
		}
		if d.ReadOnly {
			opts = append(opts, "readonly=on")
		}
		drives = append(drives, strings.Join(opts, ","))
	}

	if s.EFIVars != "" && s.EFICode == "" {
		return nil, nil, fmt.Errorf("EFI variables %s given without EFI code", s.EFIVars)
	}
	efiFormat := s.EFIFormat
	if efiFormat == "" {
		efiFormat = "raw"
	}
	if s.EFICode != "" {
		drives = append(drives, "file="+esc(s.EFICode)+",if=pflash,unit=0,format="+efiFormat+",readonly=on")
	}
	if s.EFIVars != "" {
		drives = append(drives, "file="+esc(s.EFIVars)+",if=pflash,unit=1,format="+efiFormat)
	}
	return drives, devices, nil
}
