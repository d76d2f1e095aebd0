package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/kilnbuild/kiln/export"
)

// Output formats: Packer's qemu builder writes qcow2 or raw; kiln also
// exports vmdk, vhd, vhdx and ova. QEMU cannot reasonably run a guest on
// those, so the VM works on a qcow2 disk and the export happens at the end.
var outputFormats = []string{"qcow2", "raw", "vmdk", "vhd", "vhdx", "ova"}

// prepareOutput validates format and its kiln options, sets WorkFormat,
// and lets trim_before_shutdown turn on discard passthrough.
func (q *QEMU) prepareOutput() hcl.Diagnostics {
	var diags hcl.Diagnostics
	diags = append(diags, defaultEnum("format", &q.Format, "qcow2", outputFormats)...)
	q.WorkFormat = q.Format
	if q.Format != "qcow2" && q.Format != "raw" {
		q.WorkFormat = "qcow2"
	}
	if q.QCOW2Compression != "" && q.Format == "qcow2" {
		q.DiskCompression = true // naming the algorithm asks for compression
	}
	if diags.HasErrors() {
		return diags
	}
	// The virtual machine settings of an ova are defaulted later in
	// prepare; only the format options are checked here.
	f := q.ExportFormat()
	f.OVA = export.OVAInfo{}
	if err := f.Validate(); err != nil {
		attr := "format"
		for _, a := range []struct{ name, val string }{
			{"qcow2_compression", q.QCOW2Compression}, {"vmdk_subformat", q.VMDKSubformat},
			{"vmdk_adapter_type", q.VMDKAdapterType}, {"vmdk_hwversion", q.VMDKHWVersion},
			{"vhd_subformat", q.VHDSubformat},
		} {
			if a.val != "" && strings.Contains(err.Error(), optionWord(a.name)) {
				attr = a.name
				break
			}
		}
		diags = append(diags, errAt(attr, "Invalid output format options",
			fmt.Sprintf("%v. Options: qcow2_compression (qcow2), vmdk_subformat, vmdk_adapter_type, vmdk_hwversion (vmdk, ova), vhd_subformat (vhd).", err)))
	}
	if q.TrimBeforeShutdown {
		switch q.DiskDiscard {
		case "":
			// Without discard=unmap QEMU drops the guest's trim requests.
			q.DiskDiscard = "unmap"
		case "ignore":
			diags = append(diags, warnAt("trim_before_shutdown", "trim_before_shutdown has no effect with disk_discard = \"ignore\"",
				"QEMU drops the guest's discard requests; remove disk_discard (it then defaults to \"unmap\") or set it to \"unmap\"."))
		}
		if q.Communicator == "none" {
			diags = append(diags, warnAt("trim_before_shutdown", "trim_before_shutdown needs SSH",
				"fstrim runs over the communicator; with communicator = \"none\" nothing is trimmed."))
		}
	}
	return diags
}

// optionWord maps an option to the word export's validation errors use.
func optionWord(attr string) string {
	return map[string]string{
		"qcow2_compression": "compression", "vmdk_subformat": "subformat",
		"vmdk_adapter_type": "adapter type", "vmdk_hwversion": "hardware version",
		"vhd_subformat": "subformat",
	}[attr]
}

// ExportFormat is the output format with its options, for package export.
func (q *QEMU) ExportFormat() export.Format {
	f := export.Format{
		Name:            q.Format,
		VMDKSubformat:   q.VMDKSubformat,
		VMDKAdapterType: q.VMDKAdapterType,
		VMDKHWVersion:   q.VMDKHWVersion,
		VHDSubformat:    q.VHDSubformat,
	}
	if q.Format == "qcow2" && q.DiskCompression {
		f.Compression = q.QCOW2Compression
		if f.Compression == "" {
			f.Compression = "zlib" // Packer's disk_compression
		}
	} else if q.QCOW2Compression != "" {
		f.Compression = q.QCOW2Compression // rejected by Validate
	}
	if q.Format == "ova" {
		// The virtual system is named after the file (export's default).
		f.OVA = export.OVAInfo{CPUs: q.CPUs, MemoryMB: q.Memory, EFI: q.EFIBoot}
	}
	return f
}

// Exported reports whether the output needs an export step (a format the
// VM cannot run on).
func (q *QEMU) Exported() bool { return !slices.Contains([]string{"qcow2", "raw"}, q.Format) }
