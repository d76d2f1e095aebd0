package export

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/disk"
	"github.com/kilnbuild/kiln/internal/testutil"
)

// parsedOVF reads a descriptor the way an importer does: by namespace,
// not by prefix.
type parsedOVF struct {
	Files []struct {
		Href string `xml:"http://schemas.dmtf.org/ovf/envelope/1 href,attr"`
		Size int64  `xml:"http://schemas.dmtf.org/ovf/envelope/1 size,attr"`
	} `xml:"http://schemas.dmtf.org/ovf/envelope/1 References>File"`
	Disks []struct {
		Capacity      int64  `xml:"http://schemas.dmtf.org/ovf/envelope/1 capacity,attr"`
		PopulatedSize int64  `xml:"http://schemas.dmtf.org/ovf/envelope/1 populatedSize,attr"`
		Format        string `xml:"http://schemas.dmtf.org/ovf/envelope/1 format,attr"`
		FileRef       string `xml:"http://schemas.dmtf.org/ovf/envelope/1 fileRef,attr"`
	} `xml:"http://schemas.dmtf.org/ovf/envelope/1 DiskSection>Disk"`
	Networks []struct {
		Name string `xml:"http://schemas.dmtf.org/ovf/envelope/1 name,attr"`
	} `xml:"http://schemas.dmtf.org/ovf/envelope/1 NetworkSection>Network"`
	System struct {
		ID   string `xml:"http://schemas.dmtf.org/ovf/envelope/1 id,attr"`
		Name string `xml:"http://schemas.dmtf.org/ovf/envelope/1 Name"`
		OS   struct {
			ID     int    `xml:"http://schemas.dmtf.org/ovf/envelope/1 id,attr"`
			OSType string `xml:"http://www.vmware.com/schema/ovf osType,attr"`
		} `xml:"http://schemas.dmtf.org/ovf/envelope/1 OperatingSystemSection"`
		HW struct {
			System struct {
				Type string `xml:"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData VirtualSystemType"`
			} `xml:"http://schemas.dmtf.org/ovf/envelope/1 System"`
			Items []struct {
				ResourceType    int    `xml:"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData ResourceType"`
				ResourceSubType string `xml:"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData ResourceSubType"`
				VirtualQuantity int64  `xml:"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData VirtualQuantity"`
				HostResource    string `xml:"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData HostResource"`
			} `xml:"http://schemas.dmtf.org/ovf/envelope/1 Item"`
			Config []struct {
				Key   string `xml:"http://www.vmware.com/schema/ovf key,attr"`
				Value string `xml:"http://www.vmware.com/schema/ovf value,attr"`
			} `xml:"http://www.vmware.com/schema/ovf Config"`
		} `xml:"http://schemas.dmtf.org/ovf/envelope/1 VirtualHardwareSection"`
	} `xml:"http://schemas.dmtf.org/ovf/envelope/1 VirtualSystem"`
}

type member struct {
	name string
	data []byte
	hdr  *tar.Header
}

func readTar(t *testing.T, p string) []member {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []member
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{h.Name, b, h})
	}
}

func TestExportOVA(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	dir := t.TempDir()
	src := makeSource(t, dir)
	dst := filepath.Join(dir, "appliance.ova")
	f := Format{Name: "ova", OVA: OVAInfo{Name: "web", CPUs: 2, MemoryMB: 2048, EFI: true}}
	if err := Export(context.Background(), disk.Tool{}, src, "raw", dst, f, nil); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); strings.Join(got, " ") != "appliance.ova src.raw" {
		t.Errorf("directory = %v, want only the OVA beside the source", got)
	}

	ms := readTar(t, dst)
	var names []string
	for _, m := range ms {
		names = append(names, m.name)
		if m.hdr.Format != tar.FormatUSTAR && m.hdr.Format != tar.FormatUnknown {
			t.Errorf("%s: tar format %v, want USTAR", m.name, m.hdr.Format)
		}
	}
	if strings.Join(names, " ") != "web.ovf web.mf web-disk1.vmdk" {
		t.Fatalf("members = %v, want OVF, manifest, disk in that order", names)
	}
	ovfData, mf, vmdk := ms[0].data, ms[1].data, ms[2].data

	// The manifest's sums are those of the members.
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	wantMF := "SHA256(web.ovf)= " + sum(ovfData) + "\nSHA256(web-disk1.vmdk)= " + sum(vmdk) + "\n"
	if string(mf) != wantMF {
		t.Errorf("manifest =\n%s\nwant\n%s", mf, wantMF)
	}

	var o parsedOVF
	if err := xml.Unmarshal(ovfData, &o); err != nil {
		t.Fatalf("descriptor does not parse: %v\n%s", err, ovfData)
	}
	if len(o.Files) != 1 || o.Files[0].Href != "web-disk1.vmdk" || o.Files[0].Size != int64(len(vmdk)) {
		t.Errorf("References = %+v, want web-disk1.vmdk with %d bytes", o.Files, len(vmdk))
	}
	if len(o.Disks) != 1 || o.Disks[0].Capacity != srcSize || o.Disks[0].Format != streamOptimizedURI ||
		o.Disks[0].PopulatedSize <= 0 || o.Disks[0].PopulatedSize > srcSize {
		t.Errorf("Disk = %+v, want capacity %d, streamOptimized, a populated size", o.Disks, srcSize)
	}
	if len(o.Networks) != 1 {
		t.Errorf("networks = %+v, want one", o.Networks)
	}
	if o.System.ID != "web" || o.System.Name != "web" {
		t.Errorf("virtual system id/name = %q/%q, want web", o.System.ID, o.System.Name)
	}
	if o.System.OS.OSType != "otherLinux64Guest" || o.System.OS.ID != 101 {
		t.Errorf("OS = %+v, want otherLinux64Guest / 101", o.System.OS)
	}
	if o.System.HW.System.Type != "vmx-14" {
		t.Errorf("VirtualSystemType = %q, want vmx-14", o.System.HW.System.Type)
	}
	byType := map[int]int64{}
	var ctrl, diskRes string
	for _, it := range o.System.HW.Items {
		byType[it.ResourceType] = it.VirtualQuantity
		switch it.ResourceType {
		case rtSCSI:
			ctrl = it.ResourceSubType
		case rtDisk:
			diskRes = it.HostResource
		}
	}
	if byType[rtCPU] != 2 || byType[rtMemory] != 2048 {
		t.Errorf("CPU/memory = %d/%d, want 2/2048", byType[rtCPU], byType[rtMemory])
	}
	if _, ok := byType[rtNIC]; !ok {
		t.Error("no network adapter item")
	}
	if ctrl != "lsilogic" || diskRes != "ovf:/disk/vmdisk1" {
		t.Errorf("controller %q, disk %q; want lsilogic and ovf:/disk/vmdisk1", ctrl, diskRes)
	}
	if len(o.System.HW.Config) != 1 || o.System.HW.Config[0].Key != "firmware" || o.System.HW.Config[0].Value != "efi" {
		t.Errorf("vmw:Config = %+v, want firmware=efi", o.System.HW.Config)
	}

	// The disk inside is a streamOptimized VMDK with the guest's data.
	vmdkPath := filepath.Join(t.TempDir(), "disk.vmdk")
	if err := os.WriteFile(vmdkPath, vmdk, 0o644); err != nil {
		t.Fatal(err)
	}
	if i := info(t, vmdkPath, "vmdk"); i.FormatSpecific.Data.CreateType != "streamOptimized" {
		t.Errorf("disk create-type = %q", i.FormatSpecific.Data.CreateType)
	}
	if d := vmdkDescriptor(t, vmdkPath); !strings.Contains(d, `ddb.adapterType = "lsilogic"`) {
		t.Errorf("OVA disk should default to lsilogic:\n%.400s", d)
	}
	if err := (disk.Tool{}).Compare(context.Background(), src, vmdkPath); err != nil {
		t.Errorf("disk in the OVA differs from the source: %v", err)
	}
	if err := VerifyOVA(context.Background(), dst); err != nil {
		t.Errorf("VerifyOVA on a good OVA: %v", err)
	}
}

// writeTar writes members in the given order.
func writeTar(t *testing.T, p string, ms ...member) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Size: int64(len(m.data)), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.data)
	}
	tw.Close()
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyOVARejects(t *testing.T) {
	disk := []byte("not really a vmdk")
	ovf, err := buildOVF(Format{Name: "ova", VMDKAdapterType: "ide", VMDKHWVersion: "7", OVA: OVAInfo{CPUs: 1, MemoryMB: 256, OSType: "otherGuest"}},
		"x", ovaDisk{href: "x-disk1.vmdk", size: int64(len(disk)), capacity: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ovf, []byte("<vssd:VirtualSystemType>vmx-07</vssd:VirtualSystemType>")) {
		t.Errorf("hardware version 7 should be written as vmx-07:\n%s", ovf)
	}
	goodMF := []byte("SHA256(x.ovf)= " + sha256Hex(ovf) + "\nSHA256(x-disk1.vmdk)= " + sha256Hex(disk) + "\n")
	dir := t.TempDir()
	cases := map[string]struct {
		members []member
		want    string
	}{
		"good":          {[]member{{name: "x.ovf", data: ovf}, {name: "x.mf", data: goodMF}, {name: "x-disk1.vmdk", data: disk}}, ""},
		"mf first":      {[]member{{name: "x.mf", data: goodMF}, {name: "x.ovf", data: ovf}, {name: "x-disk1.vmdk", data: disk}}, "not the .ovf"},
		"disk tampered": {[]member{{name: "x.ovf", data: ovf}, {name: "x.mf", data: goodMF}, {name: "x-disk1.vmdk", data: []byte("not really a vmdX")}}, "manifest says"},
		"disk missing":  {[]member{{name: "x.ovf", data: ovf}, {name: "x.mf", data: goodMF}}, "not in the archive"},
		"no manifest":   {[]member{{name: "x.ovf", data: ovf}, {name: "x-disk1.vmdk", data: disk}}, "no manifest"},
		"bad xml":       {[]member{{name: "x.ovf", data: []byte("<Envelope")}, {name: "x.mf", data: []byte("SHA256(x.ovf)= " + sha256Hex([]byte("<Envelope")) + "\n")}}, "parsing the OVF"},
	}
	for name, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".ova")
		writeTar(t, p, c.members...)
		err := VerifyOVA(context.Background(), p)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
}
