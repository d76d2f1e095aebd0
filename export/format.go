// Package export writes a finished disk image in the format its consumer
// wants: raw, qcow2 (optionally zlib- or zstd-compressed), VMDK, VHD, VHDX,
// or an OVA appliance (OVF descriptor + manifest + streamOptimized VMDK in
// one tar).
//
// Every conversion goes through qemu-img (package disk), and every output
// is verified before Export returns: disk images with `qemu-img compare`
// against the source, the OVA by re-reading the tar and checking each
// member against the manifest's SHA-256. Outputs appear at their final
// path only when complete and verified.
package export

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Format is an output format and its options.
type Format struct {
	// Name is "raw", "qcow2", "vmdk", "vhd", "vhdx" or "ova".
	Name string
	// Compression applies to qcow2 only: "" (none), "zlib" or "zstd".
	// zstd is about 10x faster to write than zlib at the same size, but
	// needs QEMU >= 5.1 to read.
	Compression string
	// VMDKSubformat is "streamOptimized" (default) or "monolithicSparse".
	// OVA always uses streamOptimized.
	VMDKSubformat string
	// VMDKAdapterType is written into the VMDK descriptor: "" (qemu's
	// default, ide), "lsilogic", "buslogic", "ide" or "legacyESX". OVA
	// defaults to lsilogic, which VMware guests boot from without extra
	// drivers.
	VMDKAdapterType string
	// VMDKHWVersion is the VMware virtual hardware version, e.g. "14"
	// ("" keeps qemu's default, 4). OVA defaults to 14.
	VMDKHWVersion string
	// VHDSubformat is "dynamic" (default) or "fixed" (what Azure wants).
	VHDSubformat string
	// OVA describes the virtual machine of an "ova" export.
	OVA OVAInfo
}

// OVAInfo is the virtual hardware an OVA descriptor declares.
type OVAInfo struct {
	// Name of the virtual system; default the output file's base name
	// without extension.
	Name string
	// CPUs (default 1) and MemoryMB (default 512, Packer's qemu default).
	CPUs, MemoryMB int
	// OSType is VMware's guest OS identifier (vmw:osType), default
	// "otherLinux64Guest".
	OSType string
	// EFI declares UEFI firmware; a GPT disk with only an EFI System
	// Partition does not boot under the default BIOS firmware.
	EFI bool
}

var (
	formatNames     = []string{"raw", "qcow2", "vmdk", "vhd", "vhdx", "ova"}
	vmdkSubformats  = []string{"streamOptimized", "monolithicSparse"}
	vmdkAdapters    = []string{"lsilogic", "buslogic", "ide", "legacyESX"}
	vhdSubformats   = []string{"dynamic", "fixed"}
	qcowCompression = []string{"zlib", "zstd"}
)

// Extension returns the usual file extension for the format, with a dot.
func (f Format) Extension() string {
	switch f.Name {
	case "raw":
		return ".raw"
	case "vhd":
		return ".vhd"
	default:
		return "." + f.Name
	}
}

// ParseFormat parses a format specification: a format name followed by
// comma-separated options, e.g.
//
//	qcow2,compression=zstd
//	vmdk,subformat=streamOptimized,adapter_type=lsilogic,hwversion=14
//	vhd,subformat=fixed
//	ova,name=web,cpus=2,memory=2048,os_type=ubuntu64Guest,efi=true
//
// The result is validated.
func ParseFormat(spec string) (Format, error) {
	parts := strings.Split(spec, ",")
	f := Format{Name: strings.TrimSpace(parts[0])}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return Format{}, fmt.Errorf("format %q: option %q is not key=value", spec, p)
		}
		var err error
		switch k {
		case "compression":
			f.Compression = v
		case "subformat":
			switch f.Name {
			case "vhd", "vhdx":
				f.VHDSubformat = v
			default:
				f.VMDKSubformat = v
			}
		case "adapter_type":
			f.VMDKAdapterType = v
		case "hwversion":
			f.VMDKHWVersion = v
		case "name":
			f.OVA.Name = v
		case "cpus":
			f.OVA.CPUs, err = strconv.Atoi(v)
		case "memory":
			f.OVA.MemoryMB, err = strconv.Atoi(v)
		case "os_type":
			f.OVA.OSType = v
		case "efi":
			f.OVA.EFI, err = strconv.ParseBool(v)
		default:
			return Format{}, fmt.Errorf("format %q: unknown option %q", spec, k)
		}
		if err != nil {
			return Format{}, fmt.Errorf("format %q: option %s: %w", spec, k, err)
		}
	}
	if err := f.Validate(); err != nil {
		return Format{}, err
	}
	return f, nil
}

// Validate reports a bad format name, an option that does not apply to
// the format, or an unknown option value.
func (f Format) Validate() error {
	if !slices.Contains(formatNames, f.Name) {
		return fmt.Errorf("unknown output format %q (supported: %s)", f.Name, strings.Join(formatNames, ", "))
	}
	isVMDK := f.Name == "vmdk" || f.Name == "ova"
	switch {
	case f.Compression != "" && f.Name != "qcow2":
		return fmt.Errorf("format %s: compression applies to qcow2 only", f.Name)
	case f.Compression != "" && !slices.Contains(qcowCompression, f.Compression):
		return fmt.Errorf("format qcow2: unknown compression %q (supported: zlib, zstd)", f.Compression)
	case !isVMDK && (f.VMDKSubformat != "" || f.VMDKAdapterType != "" || f.VMDKHWVersion != ""):
		return fmt.Errorf("format %s: VMDK subformat, adapter type and hardware version apply to vmdk and ova only", f.Name)
	case f.VMDKSubformat != "" && !slices.Contains(vmdkSubformats, f.VMDKSubformat):
		return fmt.Errorf("format %s: unknown VMDK subformat %q (supported: %s)", f.Name, f.VMDKSubformat, strings.Join(vmdkSubformats, ", "))
	case f.Name == "ova" && f.VMDKSubformat != "" && f.VMDKSubformat != "streamOptimized":
		return fmt.Errorf("format ova: the disk inside an OVA must be streamOptimized, not %s", f.VMDKSubformat)
	case f.VMDKAdapterType != "" && !slices.Contains(vmdkAdapters, f.VMDKAdapterType):
		return fmt.Errorf("format %s: unknown VMDK adapter type %q (supported: %s)", f.Name, f.VMDKAdapterType, strings.Join(vmdkAdapters, ", "))
	case f.VMDKHWVersion != "" && !isDigits(f.VMDKHWVersion):
		return fmt.Errorf("format %s: VMDK hardware version %q is not a number", f.Name, f.VMDKHWVersion)
	case f.VHDSubformat != "" && f.Name != "vhd":
		return fmt.Errorf("format %s: VHD subformat applies to vhd only", f.Name)
	case f.VHDSubformat != "" && !slices.Contains(vhdSubformats, f.VHDSubformat):
		return fmt.Errorf("format vhd: unknown subformat %q (supported: %s)", f.VHDSubformat, strings.Join(vhdSubformats, ", "))
	case f.Name != "ova" && f.OVA != OVAInfo{}:
		return fmt.Errorf("format %s: virtual machine settings (name, cpus, memory, os_type, efi) apply to ova only", f.Name)
	case f.OVA.CPUs < 0 || f.OVA.MemoryMB < 0:
		return fmt.Errorf("format ova: cpus and memory must not be negative")
	case strings.ContainsAny(f.OVA.OSType, "\"<>&"):
		return fmt.Errorf("format ova: os_type %q contains markup characters", f.OVA.OSType)
	}
	return nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// withDefaults fills the defaults that depend on the format.
func (f Format) withDefaults() Format {
	switch f.Name {
	case "vmdk":
		if f.VMDKSubformat == "" {
			f.VMDKSubformat = "streamOptimized"
		}
	case "ova":
		f.VMDKSubformat = "streamOptimized"
		if f.VMDKAdapterType == "" {
			f.VMDKAdapterType = "lsilogic"
		}
		if f.VMDKHWVersion == "" {
			f.VMDKHWVersion = "14"
		}
		if f.OVA.CPUs == 0 {
			f.OVA.CPUs = 1
		}
		if f.OVA.MemoryMB == 0 {
			f.OVA.MemoryMB = 512
		}
		if f.OVA.OSType == "" {
			f.OVA.OSType = "otherLinux64Guest"
		}
	case "vhd":
		if f.VHDSubformat == "" {
			f.VHDSubformat = "dynamic"
		}
	}
	return f
}

// convertArgs returns qemu-img's output format name, whether to compress
// (-c), and the extra arguments for f (already defaulted). The -o values
// come from closed sets or digits, so they cannot inject options.
func (f Format) convertArgs() (dstFormat string, compress bool, extra []string) {
	switch f.Name {
	case "raw":
		return "raw", false, nil
	case "qcow2":
		if f.Compression == "" {
			return "qcow2", false, nil
		}
		// -W (out-of-order writes) lets the compression threads run in
		// parallel; it is safe for qcow2.
		return "qcow2", true, []string{"-W", "-o", "compression_type=" + f.Compression}
	case "vhd":
		// force_size keeps the exact virtual size instead of rounding it
		// to a CHS geometry: cloud importers (Azure) reject other sizes.
		return "vpc", false, []string{"-o", "subformat=" + f.VHDSubformat + ",force_size=on"}
	case "vhdx":
		return "vhdx", false, nil
	case "vmdk", "ova":
		opts := []string{"subformat=" + f.VMDKSubformat}
		if f.VMDKAdapterType != "" {
			opts = append(opts, "adapter_type="+f.VMDKAdapterType)
		}
		if f.VMDKHWVersion != "" {
			opts = append(opts, "hwversion="+f.VMDKHWVersion)
		}
		return "vmdk", false, []string{"-o", strings.Join(opts, ",")}
	}
	panic("export: convertArgs on unvalidated format " + f.Name)
}
