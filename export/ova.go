package export

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/disk"
	"github.com/kilnbuild/kiln/internal/fsx"
)

// An OVA is a tar whose members are, in this order, the OVF descriptor,
// the manifest, and the disks (OVF 1.0, DSP0243 section 5.3): importers
// stream it and give up with a misleading "missing descriptor" if the
// order is different. The disk must be a streamOptimized VMDK.

// XML namespaces of an OVF 1.0 descriptor.
const (
	nsOVF  = "http://schemas.dmtf.org/ovf/envelope/1"
	nsRASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
	nsVSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
	nsVMW  = "http://www.vmware.com/schema/ovf"
	nsXSI  = "http://www.w3.org/2001/XMLSchema-instance"

	streamOptimizedURI = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
)

// CIM resource types used in VirtualHardwareSection items.
const (
	rtCPU    = 3
	rtMemory = 4
	rtIDE    = 5
	rtSCSI   = 6
	rtNIC    = 10
	rtDisk   = 17
)

// The structs below are written with literal prefixes ("ovf:id"), which
// is how encoding/xml emits prefixed names; verifyOVA parses the result
// back with namespace-aware tags, so a wrong declaration is caught.
type ovfEnvelope struct {
	XMLName    xml.Name `xml:"Envelope"`
	Xmlns      string   `xml:"xmlns,attr"`
	XmlnsOVF   string   `xml:"xmlns:ovf,attr"`
	XmlnsRASD  string   `xml:"xmlns:rasd,attr"`
	XmlnsVSSD  string   `xml:"xmlns:vssd,attr"`
	XmlnsVMW   string   `xml:"xmlns:vmw,attr"`
	XmlnsXSI   string   `xml:"xmlns:xsi,attr"`
	References struct {
		File []ovfFile `xml:"File"`
	} `xml:"References"`
	DiskSection struct {
		Info string    `xml:"Info"`
		Disk []ovfDisk `xml:"Disk"`
	} `xml:"DiskSection"`
	NetworkSection struct {
		Info    string `xml:"Info"`
		Network []struct {
			Name        string `xml:"ovf:name,attr"`
			Description string `xml:"Description"`
		} `xml:"Network"`
	} `xml:"NetworkSection"`
	VirtualSystem ovfVirtualSystem `xml:"VirtualSystem"`
}

type ovfFile struct {
	Href string `xml:"ovf:href,attr"`
	ID   string `xml:"ovf:id,attr"`
	Size int64  `xml:"ovf:size,attr"`
}

type ovfDisk struct {
	Capacity      int64  `xml:"ovf:capacity,attr"`
	CapacityUnits string `xml:"ovf:capacityAllocationUnits,attr"`
	DiskID        string `xml:"ovf:diskId,attr"`
	FileRef       string `xml:"ovf:fileRef,attr"`
	Format        string `xml:"ovf:format,attr"`
	PopulatedSize int64  `xml:"ovf:populatedSize,attr,omitempty"`
}

type ovfVirtualSystem struct {
	ID     string `xml:"ovf:id,attr"`
	Info   string `xml:"Info"`
	Name   string `xml:"Name"`
	OSSect struct {
		ID     int    `xml:"ovf:id,attr"`
		OSType string `xml:"vmw:osType,attr"`
		Info   string `xml:"Info"`
	} `xml:"OperatingSystemSection"`
	Hardware struct {
		Info   string `xml:"Info"`
		System struct {
			ElementName string `xml:"vssd:ElementName"`
			InstanceID  int    `xml:"vssd:InstanceID"`
			Identifier  string `xml:"vssd:VirtualSystemIdentifier"`
			Type        string `xml:"vssd:VirtualSystemType"`
		} `xml:"System"`
		Items  []rasdItem  `xml:"Item"`
		Config []vmwConfig `xml:"vmw:Config"`
	} `xml:"VirtualHardwareSection"`
}

// rasdItem's fields are in the alphabetical order the CIM schema's
// xs:sequence requires; strict validators reject another order.
type rasdItem struct {
	Address             string `xml:"rasd:Address,omitempty"`
	AddressOnParent     string `xml:"rasd:AddressOnParent,omitempty"`
	AllocationUnits     string `xml:"rasd:AllocationUnits,omitempty"`
	AutomaticAllocation string `xml:"rasd:AutomaticAllocation,omitempty"`
	Connection          string `xml:"rasd:Connection,omitempty"`
	Description         string `xml:"rasd:Description,omitempty"`
	ElementName         string `xml:"rasd:ElementName"`
	HostResource        string `xml:"rasd:HostResource,omitempty"`
	InstanceID          int    `xml:"rasd:InstanceID"`
	Parent              string `xml:"rasd:Parent,omitempty"`
	ResourceSubType     string `xml:"rasd:ResourceSubType,omitempty"`
	ResourceType        int    `xml:"rasd:ResourceType"`
	VirtualQuantity     int64  `xml:"rasd:VirtualQuantity,omitempty"`
}

type vmwConfig struct {
	Required string `xml:"ovf:required,attr"`
	Key      string `xml:"vmw:key,attr"`
	Value    string `xml:"vmw:value,attr"`
}

// ovaDisk is what the descriptor says about the one disk.
type ovaDisk struct {
	href          string
	size          int64 // bytes of the VMDK file
	capacity      int64 // virtual size
	populatedSize int64
}

// osID maps VMware's guest id to the CIM operating system type that
// other importers (VirtualBox) read: 101 "Linux 64-Bit", 36 "LINUX".
func osID(osType string) int {
	if strings.Contains(osType, "64") {
		return 101
	}
	return 36
}

// buildOVF renders the descriptor.
func buildOVF(f Format, name string, d ovaDisk) ([]byte, error) {
	e := ovfEnvelope{
		Xmlns: nsOVF, XmlnsOVF: nsOVF, XmlnsRASD: nsRASD, XmlnsVSSD: nsVSSD, XmlnsVMW: nsVMW, XmlnsXSI: nsXSI,
	}
	e.References.File = []ovfFile{{Href: d.href, ID: "file1", Size: d.size}}
	e.DiskSection.Info = "Virtual disk information"
	e.DiskSection.Disk = []ovfDisk{{
		Capacity: d.capacity, CapacityUnits: "byte", DiskID: "vmdisk1", FileRef: "file1",
		Format: streamOptimizedURI, PopulatedSize: d.populatedSize,
	}}
	e.NetworkSection.Info = "The list of logical networks"
	e.NetworkSection.Network = append(e.NetworkSection.Network, struct {
		Name        string `xml:"ovf:name,attr"`
		Description string `xml:"Description"`
	}{"VM Network", "The VM Network network"})

	vs := &e.VirtualSystem
	vs.ID, vs.Info, vs.Name = name, "A virtual machine", name
	vs.OSSect.ID, vs.OSSect.OSType = osID(f.OVA.OSType), f.OVA.OSType
	vs.OSSect.Info = "The kind of installed guest operating system"
	hw := &vs.Hardware
	hw.Info = "Virtual hardware requirements"
	hw.System.ElementName = "Virtual Hardware Family"
	hw.System.Identifier = name
	hwv, err := strconv.Atoi(f.VMDKHWVersion)
	if err != nil {
		return nil, fmt.Errorf("VMDK hardware version %q: %w", f.VMDKHWVersion, err)
	}
	hw.System.Type = fmt.Sprintf("vmx-%02d", hwv)

	ctrl := rasdItem{Address: "0", ElementName: "SCSI Controller 0", InstanceID: 3, ResourceSubType: f.VMDKAdapterType, ResourceType: rtSCSI}
	switch f.VMDKAdapterType {
	case "ide":
		ctrl = rasdItem{Address: "0", ElementName: "IDE Controller 0", InstanceID: 3, ResourceType: rtIDE}
	case "legacyESX":
		ctrl.ResourceSubType = "buslogic"
	}
	hw.Items = []rasdItem{
		{AllocationUnits: "hertz * 10^6", Description: "Number of Virtual CPUs", ElementName: fmt.Sprintf("%d virtual CPU(s)", f.OVA.CPUs),
			InstanceID: 1, ResourceType: rtCPU, VirtualQuantity: int64(f.OVA.CPUs)},
		{AllocationUnits: "byte * 2^20", Description: "Memory Size", ElementName: fmt.Sprintf("%dMB of memory", f.OVA.MemoryMB),
			InstanceID: 2, ResourceType: rtMemory, VirtualQuantity: int64(f.OVA.MemoryMB)},
		ctrl,
		{AddressOnParent: "0", ElementName: "Hard Disk 1", HostResource: "ovf:/disk/vmdisk1", InstanceID: 4, Parent: "3", ResourceType: rtDisk},
		// E1000 has a driver in every guest OS; vmxnet3 needs VMware tools.
		{AddressOnParent: "7", AutomaticAllocation: "true", Connection: "VM Network", ElementName: "Network adapter 1",
			InstanceID: 5, ResourceSubType: "E1000", ResourceType: rtNIC},
	}
	if f.OVA.EFI {
		hw.Config = []vmwConfig{{Required: "false", Key: "firmware", Value: "efi"}}
	}

	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("writing the OVF descriptor: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// exportOVA converts src to a verified streamOptimized VMDK, writes the
// descriptor and manifest for it, packs the three into dst, and verifies
// the packed tar against the manifest before committing it.
func exportOVA(ctx context.Context, tool disk.Tool, src, srcFormat, dst string, f Format, progress func(float64)) (err error) {
	name := f.OVA.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(dst), filepath.Ext(dst))
	}
	if strings.ContainsAny(name, "/\\") {
		return fmt.Errorf("export: OVA name %q must not contain a path separator", name)
	}
	vmdkName := name + "-disk1.vmdk"
	vmdkTmp := fsx.TempName(filepath.Join(filepath.Dir(dst), vmdkName))
	defer removeQuiet(vmdkTmp) // only packed, never kept

	err = convertVerified(ctx, tool, src, srcFormat, vmdkTmp, f, func(p float64) { progress(p * 0.9) })
	if err != nil {
		return err
	}
	info, err := tool.Info(ctx, src)
	if err != nil {
		return fmt.Errorf("exporting %s as ova: %w", src, err)
	}
	vmdkSum, vmdkSize, err := sha256File(ctx, vmdkTmp)
	if err != nil {
		return fmt.Errorf("exporting %s as ova: %w", src, err)
	}
	ovf, err := buildOVF(f, name, ovaDisk{href: vmdkName, size: vmdkSize, capacity: info.VirtualSize, populatedSize: info.ActualSize})
	if err != nil {
		return err
	}
	ovfName, mfName := name+".ovf", name+".mf"
	mf := fmt.Sprintf("SHA256(%s)= %s\nSHA256(%s)= %s\n", ovfName, sha256Hex(ovf), vmdkName, vmdkSum)

	out, err := fsx.Create(dst)
	if err != nil {
		return err
	}
	defer out.Abort()
	tw := tar.NewWriter(out)
	mtime := time.Now().Truncate(time.Second)
	for _, m := range []struct {
		name string
		data []byte
	}{{ovfName, ovf}, {mfName, []byte(mf)}} {
		if err := tw.WriteHeader(tarHeader(m.name, int64(len(m.data)), mtime)); err != nil {
			return fmt.Errorf("writing %s: %w", dst, err)
		}
		if _, err := tw.Write(m.data); err != nil {
			return fmt.Errorf("writing %s: %w", dst, err)
		}
	}
	if err := tw.WriteHeader(tarHeader(vmdkName, vmdkSize, mtime)); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := copyFile(ctx, tw, vmdkTmp, vmdkSize, func(done int64) {
		progress(90 + 9*float64(done)/float64(max(vmdkSize, 1)))
	}); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := VerifyOVA(ctx, out.Name()); err != nil {
		return fmt.Errorf("verifying %s: %w", dst, err)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	progress(100)
	return nil
}

// tarHeader is a plain-file header in USTAR, the format OVF requires;
// members of 8 GiB or more do not fit USTAR's size field and use PAX.
func tarHeader(name string, size int64, mtime time.Time) *tar.Header {
	h := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  mtime,
		Format:   tar.FormatUSTAR,
	}
	if size >= 1<<33 {
		h.Format = tar.FormatPAX
	}
	return h
}

// VerifyOVA re-reads an OVA: the descriptor must come first and parse,
// the manifest second, every other member must be listed in the manifest
// with a matching SHA-256, and every file the descriptor references must
// be present with its declared size.
func VerifyOVA(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var (
		names []string
		sums  = map[string]string{}
		sizes = map[string]int64{}
		ovf   []byte
		mf    []byte
	)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		names = append(names, h.Name)
		sizes[h.Name] = h.Size
		switch {
		case len(names) == 1:
			if !strings.HasSuffix(h.Name, ".ovf") {
				return fmt.Errorf("first member is %s, not the .ovf descriptor", h.Name)
			}
			if ovf, err = io.ReadAll(io.LimitReader(tr, 16<<20)); err != nil {
				return err
			}
			sums[h.Name] = sha256Hex(ovf)
		case len(names) == 2 && strings.HasSuffix(h.Name, ".mf"):
			if mf, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return err
			}
		default:
			h := sha256.New()
			if _, err := fsx.CopyContext(ctx, h, tr, nil); err != nil {
				return err
			}
			sums[names[len(names)-1]] = hex.EncodeToString(h.Sum(nil))
		}
	}
	if mf == nil {
		return fmt.Errorf("no manifest (.mf) as the second member (members: %s)", strings.Join(names, ", "))
	}
	listed, err := parseManifest(mf)
	if err != nil {
		return err
	}
	for _, n := range names[2:] {
		if _, ok := listed[n]; !ok {
			return fmt.Errorf("member %s is not in the manifest", n)
		}
	}
	for n, want := range listed {
		got, ok := sums[n]
		if !ok {
			return fmt.Errorf("manifest lists %s, which is not in the archive", n)
		}
		if got != want {
			return fmt.Errorf("%s: SHA256 is %s, manifest says %s", n, got, want)
		}
	}
	refs, err := parseOVFReferences(ovf)
	if err != nil {
		return err
	}
	for _, r := range refs {
		size, ok := sizes[r.Href]
		if !ok {
			return fmt.Errorf("descriptor references %s, which is not in the archive", r.Href)
		}
		if size != r.Size {
			return fmt.Errorf("descriptor says %s has %d bytes, archive has %d", r.Href, r.Size, size)
		}
	}
	return nil
}

// parseManifest reads "SHA256(name)= hex" lines.
func parseManifest(mf []byte) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(mf)), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "SHA256(")
		name, sum, ok2 := strings.Cut(rest, ")= ")
		if !ok || !ok2 {
			return nil, fmt.Errorf("manifest line %q is not SHA256(name)= hex", line)
		}
		out[name] = strings.ToLower(sum)
	}
	return out, nil
}

type ovfRef struct {
	Href string `xml:"http://schemas.dmtf.org/ovf/envelope/1 href,attr"`
	Size int64  `xml:"http://schemas.dmtf.org/ovf/envelope/1 size,attr"`
}

// parseOVFReferences parses the descriptor namespace-aware and returns
// its file references.
func parseOVFReferences(ovf []byte) ([]ovfRef, error) {
	var env struct {
		XMLName xml.Name `xml:"http://schemas.dmtf.org/ovf/envelope/1 Envelope"`
		Files   []ovfRef `xml:"http://schemas.dmtf.org/ovf/envelope/1 References>File"`
	}
	if err := xml.Unmarshal(ovf, &env); err != nil {
		return nil, fmt.Errorf("parsing the OVF descriptor: %w", err)
	}
	if len(env.Files) == 0 {
		return nil, fmt.Errorf("the OVF descriptor references no files")
	}
	return env.Files, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sha256File hashes a file and returns the digest and the byte count.
func sha256File(ctx context.Context, p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := fsx.CopyContext(ctx, h, f, nil)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// copyFile copies exactly size bytes of p to w.
func copyFile(ctx context.Context, w io.Writer, p string, size int64, progress func(int64)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := fsx.CopyContext(ctx, w, f, progress)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s changed size while being packed (%d, expected %d)", p, n, size)
	}
	return nil
}
