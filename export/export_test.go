package export

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kilnbuild/kiln/disk"
	"github.com/kilnbuild/kiln/internal/testutil"
)

const srcSize = 64 << 20

// makeSource writes a 64 MiB sparse raw image with compressible text and
// random data at several offsets, so that compression, sparseness and
// content all matter.
func makeSource(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "src.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(srcSize); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := bytes.Repeat([]byte("kiln writes disk images; this line compresses well. "), 1<<20/52)
	for _, w := range []struct {
		off  int64
		data []byte
	}{
		{0, text},
		{8 << 20, random(2 << 20)},
		{30<<20 + 4096, text},
		{60 << 20, random(3 << 20)},
		{srcSize - 4096, []byte("last block")},
	} {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// qemuInfo is `qemu-img info --output=json` with the format-specific
// fields disk.Info leaves out.
type qemuInfo struct {
	Format         string `json:"format"`
	VirtualSize    int64  `json:"virtual-size"`
	FormatSpecific struct {
		Type string `json:"type"`
		Data struct {
			CreateType      string `json:"create-type"`
			CompressionType string `json:"compression-type"`
		} `json:"data"`
	} `json:"format-specific"`
}

func info(t *testing.T, p, format string) qemuInfo {
	t.Helper()
	args := []string{"info", "--output=json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	out, err := exec.Command("qemu-img", append(args, p)...).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", p, err)
	}
	var i qemuInfo
	if err := json.Unmarshal(out, &i); err != nil {
		t.Fatal(err)
	}
	return i
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func allocated(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// vmdkDescriptor returns the text descriptor embedded near the start of a
// sparse VMDK.
func vmdkDescriptor(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, _ := f.Read(buf)
	return string(buf[:n])
}

// dirNames lists dir, to catch leftover temporary files.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestParseFormat(t *testing.T) {
	good := map[string]Format{
		"raw":                    {Name: "raw"},
		"qcow2,compression=zstd": {Name: "qcow2", Compression: "zstd"},
		"vmdk,subformat=streamOptimized,adapter_type=lsilogic,hwversion=14": {
			Name: "vmdk", VMDKSubformat: "streamOptimized", VMDKAdapterType: "lsilogic", VMDKHWVersion: "14"},
		"vhd,subformat=fixed": {Name: "vhd", VHDSubformat: "fixed"},
		"ova,name=web,cpus=2,memory=2048,os_type=ubuntu64Guest,efi=true": {
			Name: "ova", OVA: OVAInfo{Name: "web", CPUs: 2, MemoryMB: 2048, OSType: "ubuntu64Guest", EFI: true}},
	}
	for spec, want := range good {
		got, err := ParseFormat(spec)
		if err != nil {
			t.Errorf("ParseFormat(%q): %v", spec, err)
			continue
		}
		if got != want {
			t.Errorf("ParseFormat(%q) = %+v, want %+v", spec, got, want)
		}
	}
	bad := map[string]string{
		"qcow3":                          "unknown output format",
		"vmdk,compression=zstd":          "qcow2 only",
		"qcow2,compression=lzma":         "unknown compression",
		"ova,subformat=monolithicSparse": "must be streamOptimized",
		"vmdk,subformat=flat":            "unknown VMDK subformat",
		"vmdk,adapter_type=pvscsi":       "unknown VMDK adapter type",
		"vmdk,hwversion=14,ide":          "not key=value",
		"vmdk,hwversion=1x":              "not a number",
		"qcow2,adapter_type=ide":         "vmdk and ova only",
		"vhdx,subformat=fixed":           "VHD subformat applies to vhd only",
		"vhd,subformat=sparse":           "unknown subformat",
		"qcow2,cpus=2":                   "apply to ova only",
		"ova,cpus=two":                   "option cpus",
		"raw,color=blue":                 "unknown option",
	}
	for spec, want := range bad {
		_, err := ParseFormat(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFormat(%q) error = %v, want it to mention %q", spec, err, want)
		}
	}
}

func TestExportFormats(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	dir := t.TempDir()
	src := makeSource(t, dir)
	tool := disk.Tool{}
	ctx := context.Background()

	cases := []struct {
		name   string
		f      Format
		format string // qemu-img's format name
		check  func(t *testing.T, p string, i qemuInfo)
	}{
		{"raw", Format{Name: "raw"}, "raw", func(t *testing.T, p string, i qemuInfo) {
			if a := allocated(t, p); a >= srcSize/2 {
				t.Errorf("raw export allocates %d bytes; want it sparse", a)
			}
		}},
		{"qcow2", Format{Name: "qcow2"}, "qcow2", nil},
		{"qcow2-zstd", Format{Name: "qcow2", Compression: "zstd"}, "qcow2", func(t *testing.T, p string, i qemuInfo) {
			if got := i.FormatSpecific.Data.CompressionType; got != "zstd" {
				t.Errorf("compression-type = %q, want zstd", got)
			}
		}},
		{"qcow2-zlib", Format{Name: "qcow2", Compression: "zlib"}, "qcow2", func(t *testing.T, p string, i qemuInfo) {
			if got := i.FormatSpecific.Data.CompressionType; got != "zlib" {
				t.Errorf("compression-type = %q, want zlib", got)
			}
		}},
		{"vmdk", Format{Name: "vmdk", VMDKAdapterType: "lsilogic", VMDKHWVersion: "14"}, "vmdk", func(t *testing.T, p string, i qemuInfo) {
			if got := i.FormatSpecific.Data.CreateType; got != "streamOptimized" {
				t.Errorf("create-type = %q, want streamOptimized (the default)", got)
			}
			d := vmdkDescriptor(t, p)
			for _, want := range []string{`ddb.adapterType = "lsilogic"`, `ddb.virtualHWVersion = "14"`} {
				if !strings.Contains(d, want) {
					t.Errorf("descriptor lacks %s", want)
				}
			}
		}},
		{"vmdk-sparse", Format{Name: "vmdk", VMDKSubformat: "monolithicSparse"}, "vmdk", func(t *testing.T, p string, i qemuInfo) {
			if got := i.FormatSpecific.Data.CreateType; got != "monolithicSparse" {
				t.Errorf("create-type = %q, want monolithicSparse", got)
			}
			if d := vmdkDescriptor(t, p); !strings.Contains(d, `ddb.adapterType = "ide"`) {
				t.Errorf("descriptor should keep qemu's default adapter ide:\n%.400s", d)
			}
		}},
		{"vhd-fixed", Format{Name: "vhd", VHDSubformat: "fixed"}, "vpc", func(t *testing.T, p string, i qemuInfo) {
			if got := fileSize(t, p); got != srcSize+512 {
				t.Errorf("fixed VHD is %d bytes, want %d (data + 512-byte footer)", got, srcSize+512)
			}
		}},
		{"vhd-dynamic", Format{Name: "vhd"}, "vpc", func(t *testing.T, p string, i qemuInfo) {
			if got := fileSize(t, p); got >= srcSize/2 {
				t.Errorf("dynamic VHD is %d bytes; want only the allocated blocks", got)
			}
		}},
		{"vhdx", Format{Name: "vhdx"}, "vhdx", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(dir, c.name+c.f.Extension())
			var last float64
			err := Export(ctx, tool, src, "raw", dst, c.f, func(p float64) {
				if p < last {
					t.Errorf("progress went back from %v to %v", last, p)
				}
				last = p
			})
			if err != nil {
				t.Fatal(err)
			}
			if last != 100 {
				t.Errorf("last progress = %v, want 100", last)
			}
			// Probe the format, as a consumer would, except for a fixed
			// VHD, which cannot be probed (its header is a footer).
			probe := ""
			if c.name == "vhd-fixed" {
				probe = "vpc"
			}
			i := info(t, dst, probe)
			if i.Format != c.format {
				t.Errorf("format = %q, want %q", i.Format, c.format)
			}
			if i.VirtualSize != srcSize {
				t.Errorf("virtual size = %d, want exactly %d", i.VirtualSize, srcSize)
			}
			if err := tool.CompareFormats(ctx, src, "raw", dst, c.format); err != nil {
				t.Errorf("export differs from the source: %v", err)
			}
			if c.check != nil {
				c.check(t, dst, i)
			}
		})
	}
	// Compression must actually happen: the text regions shrink.
	plain := fileSize(t, filepath.Join(dir, "qcow2.qcow2"))
	for _, n := range []string{"qcow2-zstd.qcow2", "qcow2-zlib.qcow2"} {
		if got := fileSize(t, filepath.Join(dir, n)); got >= plain-1<<20 {
			t.Errorf("%s is %d bytes, plain qcow2 %d: not compressed", n, got, plain)
		}
	}
	for _, n := range dirNames(t, dir) {
		if strings.HasPrefix(n, ".") {
			t.Errorf("temporary file left behind: %s", n)
		}
	}
}

func TestExportRefusesSourceAsDestination(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.raw")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Export(context.Background(), disk.Tool{}, src, "raw", filepath.Join(dir, ".", "a.raw"), Format{Name: "raw"}, nil)
	if err == nil || !strings.Contains(err.Error(), "is the source image") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}

func TestExportCancelLeavesNothing(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	dir := t.TempDir()
	src := makeSource(t, dir)
	for _, f := range []Format{{Name: "qcow2", Compression: "zlib"}, {Name: "ova"}} {
		t.Run(f.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			dst := filepath.Join(dir, "out"+f.Extension())
			// qcow2: cancel as qemu-img starts; ova: once packing began.
			threshold := 0.0
			if f.Name == "ova" {
				threshold = 90
			}
			err := Export(ctx, disk.Tool{}, src, "raw", dst, f, func(p float64) {
				if p >= threshold && p < 100 {
					cancel()
				}
			})
			if err == nil {
				t.Fatal("Export succeeded despite cancellation")
			}
			if ctx.Err() == nil {
				t.Fatalf("Export failed before the cancellation: %v", err)
			}
			if got := dirNames(t, dir); len(got) != 1 || got[0] != "src.raw" {
				t.Errorf("directory after cancellation = %v, want only src.raw", got)
			}
		})
	}
}
