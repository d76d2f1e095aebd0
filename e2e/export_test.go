package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExportFormats builds the test guest as vmdk, ova and raw. The VM runs
// on a qcow2 working disk in every case; the vmdk and the ova's disk must
// hold exactly the fixture's guest.raw (the build leaves /data alone), and
// the raw build's trim_before_shutdown must keep the 24 MiB the guest
// wrote and deleted out of the image.
func TestExportFormats(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	log := e.mustBuild(t, 20*time.Minute, "build", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("export.pkr.hcl"))
	ref := filepath.Join(guestDir, "guest.raw")

	vmdk := filepath.Join(out, "vmdk", e.Marker+"-vmdk.vmdk")
	info, err := exec.Command("qemu-img", "info", vmdk).CombinedOutput()
	if err != nil || !strings.Contains(string(info), "file format: vmdk") || !strings.Contains(string(info), "create type: monolithicSparse") {
		t.Errorf("vmdk output: %v\n%s", err, info)
	}
	if head := readHead(t, vmdk, 64<<10); !bytes.Contains(head, []byte(`ddb.adapterType = "lsilogic"`)) || !bytes.Contains(head, []byte(`ddb.virtualHWVersion = "14"`)) {
		t.Errorf("vmdk descriptor lacks adapter type or hardware version:\n%s", head)
	}
	compareImages(t, ref, "raw", vmdk, "vmdk")

	ova := filepath.Join(out, "ova", e.Marker+"-ova.ova")
	disk := extractOVADisk(t, ova)
	compareImages(t, ref, "raw", disk, "vmdk")

	raw := filepath.Join(out, "raw", e.Marker+"-raw")
	if got := readGuestFile(t, raw, "kept.txt"); got != "kept\n" {
		t.Errorf("raw: kept.txt = %q", got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(raw, &st); err != nil {
		t.Fatal(err)
	}
	var refSt syscall.Stat_t
	if err := syscall.Stat(ref, &refSt); err != nil {
		t.Fatal(err)
	}
	// Without the trim the deleted file's 24 MiB stay allocated.
	if alloc, base := st.Blocks*512, refSt.Blocks*512; alloc > base+8<<20 {
		t.Errorf("raw output has %d MiB allocated, the fixture %d MiB: the deleted data was not trimmed", alloc>>20, base>>20)
	}
	// The pxe post-processor: one gzip stream of exactly the raw output.
	pxeDir := filepath.Join(out, "pxe")
	check := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
	check.Dir = pxeDir
	if b, err := check.CombinedOutput(); err != nil || strings.Count(string(b), ": OK") != 4 {
		t.Errorf("pxe output SHA256SUMS: %v\n%s", err, b)
	}
	gunzip := exec.Command("sh", "-c", "gzip -dc disk.raw.gz | cmp - "+raw)
	gunzip.Dir = pxeDir
	if b, err := gunzip.CombinedOutput(); err != nil {
		t.Errorf("pxe disk.raw.gz does not decompress to the raw output: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(filepath.Join(pxeDir, "boot.ipxe")); !strings.Contains(string(b), "kernel vmlinuz initrd=initrd.img console=ttyS0,115200\n") {
		t.Errorf("boot.ipxe:\n%s", b)
	}
	for _, want := range []string{"Exporting " + e.Marker + "-vmdk.vmdk as vmdk", "Exporting " + e.Marker + "-ova.ova as ova", "Trimming free space in the guest"} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func readHead(t *testing.T, p string, n int) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	m, _ := io.ReadFull(f, b)
	return b[:m]
}

// compareImages fails unless the guest sees the same bytes in both images
// (qemu-img compare treats a larger image's tail as needing to be zero).
func compareImages(t *testing.T, a, af, b, bf string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "compare", "-f", af, "-F", bf, a, b).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare %s %s: %v\n%s", a, b, err, out)
	}
}

// extractOVADisk checks the OVA's member order (descriptor first, as the
// OVF spec requires) and returns its disk, written to a temporary file.
func extractOVADisk(t *testing.T, ova string) string {
	t.Helper()
	f, err := os.Open(ova)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	disk := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", ova, err)
		}
		names = append(names, h.Name)
		if strings.HasSuffix(h.Name, ".vmdk") {
			disk = filepath.Join(t.TempDir(), "disk.vmdk")
			w, err := os.Create(disk)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			w.Close()
		}
	}
	if len(names) < 2 || !strings.HasSuffix(names[0], ".ovf") || disk == "" {
		t.Fatalf("%s members %v: want the .ovf first and a .vmdk", ova, names)
	}
	return disk
}
