package postprocess

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// guestFixture returns the test guest's directory (testdata/guest). In CI
// a missing fixture or QEMU fails the test; elsewhere -short skips it.
func guestFixture(t *testing.T, tools ...string) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip("needs the test guest; skipped with -short")
	}
	for _, tool := range append([]string{"qemu-img"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (run `make setup`): %v", tool, err)
		}
	}
	ensure := exec.Command("../testdata/guest/ensure.sh")
	ensure.Stderr = os.Stderr
	out, err := ensure.Output()
	if err != nil {
		t.Fatalf("building the test guest: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// runPXE runs the pxe post-processor on a copy of the guest's qcow2 disk
// and returns its output directory.
func runPXE(t *testing.T, guest, extra string) (string, []Artifact) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "build", "guest.qcow2")
	if err := os.MkdirAll(filepath.Dir(in), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(guest, "guest.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	chains := parseChains(t, dir, `post-processor "pxe" {
  output_directory = "${var.out}/pxe"
  kernel_args      = "console=ttyS0,115200 kiln.pxe=1"
  `+extra+`
}`)
	arts, err := Run(context.Background(), chains, Artifact{BuilderID: BuilderID, BuildName: "g", BuilderType: "qemu", Files: []string{in}}, Env{Dir: dir, BuildName: "g"})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "pxe"), arts
}

func TestPXEOutput(t *testing.T) {
	guest := guestFixture(t, "mcopy", "sha256sum")
	out, arts := runPXE(t, guest, `compression = "zst"`)

	if len(arts) != 1 || len(arts[0].Files) != 5 {
		t.Fatalf("artifacts %+v: want the pxe output only (5 files)", arts)
	}
	// The kernel and initrd are the guest's own, byte for byte.
	for name, inImage := range map[string]string{"vmlinuz": "::/boot/vmlinuz", "initrd.img": "::/boot/initrd.img"} {
		cmd := exec.Command("mtype", "-i", filepath.Join(guest, "guest.raw")+"@@1048576", inImage)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		want, err := cmd.Output()
		if err != nil || len(want) < 1<<20 {
			t.Fatalf("reading %s with mtools: %v (%d bytes)", inImage, err, len(want))
		}
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from the guest's %s (%d vs %d bytes) %v", name, inImage, len(got), len(want), err)
		}
	}
	// The image is one zstd stream of exactly the raw disk.
	want, err := os.ReadFile(filepath.Join(guest, "guest.raw"))
	if err != nil {
		t.Fatal(err)
	}
	got := decompressZstd(t, filepath.Join(out, "disk.raw.zst"))
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Errorf("disk.raw.zst decompresses to %d bytes that differ from guest.raw (%d bytes)", len(got), len(want))
	}
	script, _ := os.ReadFile(filepath.Join(out, "boot.ipxe"))
	wantScript := "#!ipxe\nkernel vmlinuz initrd=initrd.img console=ttyS0,115200 kiln.pxe=1\ninitrd initrd.img\nboot\n"
	if string(script) != wantScript {
		t.Errorf("boot.ipxe:\n%s\nwant:\n%s", script, wantScript)
	}
	check := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
	check.Dir = out
	if b, err := check.CombinedOutput(); err != nil || strings.Count(string(b), ": OK") != 4 {
		t.Errorf("sha256sum -c: %v\n%s", err, b)
	}
}

func decompressZstd(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("decompressing %s: %v", p, err)
	}
	return b
}

func TestPXEConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{`compression = "xz"`, `Unsupported compression "xz"`},
		{`partition = -1`, "Invalid partition"},
		{`kernel_args = "a\nb"`, "Invalid kernel_args"},
		{`output_directory = "{{.Nope}}"`, "Invalid output_directory template"},
		{`kernel = "x"`, "Unsupported argument"},
	} {
		diags := Validate(parseChains(t, dir, "post-processor \"pxe\" {\n"+tc.body+"\n}"))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.body, diags, tc.want)
		}
	}
}

// TestPXEBoot boots the pxe output the way a bare-metal host would: QEMU's
// iPXE ROM fetches boot.ipxe, the kernel and the initrd over QEMU's
// built-in TFTP, with the image streamed (zstd -dc | dd style) onto a
// blank second disk, which the guest mounts. Then the same disk boots by
// itself from its own boot loader.
func TestPXEBoot(t *testing.T) {
	guest := guestFixture(t, "qemu-system-x86_64")
	if _, err := os.Stat("/usr/lib/ipxe/qemu/efi-virtio.rom"); err != nil {
		t.Fatalf("iPXE ROM for virtio-net missing (apt-get install ipxe-qemu): %v", err)
	}
	out, _ := runPXE(t, guest, `compression = "zst"`)

	// A blank "block device", bigger than the image, written by streaming.
	target := filepath.Join(t.TempDir(), "target.raw")
	dev, err := os.Create(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Truncate(128 << 20); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(filepath.Join(out, "disk.raw.zst"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dev, zr); err != nil {
		t.Fatal(err)
	}
	zr.Close()
	src.Close()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}

	pxeLog := bootGuest(t, target, "-netdev", "user,id=n0,tftp="+out+",bootfile=boot.ipxe",
		"-device", "virtio-net-pci,netdev=n0,bootindex=1", "-boot", "order=n")
	if !strings.Contains(pxeLog, "kiln.pxe=1") {
		t.Errorf("the guest did not boot the PXE kernel command line (no kiln.pxe=1 in the console):\n%s", pxeLog)
	}
	// No option ROM on this NIC: the BIOS can only boot the disk.
	diskLog := bootGuest(t, target, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=")
	if strings.Contains(diskLog, "kiln.pxe=1") {
		t.Errorf("the disk boot used the PXE command line")
	}
}

// bootGuest runs QEMU with target as a virtio disk until the guest's sshd
// is up, and returns the serial console output.
func bootGuest(t *testing.T, target string, args ...string) string {
	t.Helper()
	serial := filepath.Join(t.TempDir(), "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	argv := append([]string{"-accel", "tcg", "-m", "256", "-display", "none", "-no-reboot",
		"-serial", "file:" + serial, "-monitor", "none",
		"-drive", "file=" + target + ",format=raw,if=virtio"}, args...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(serial)
		log := string(b)
		if strings.Contains(log, "kiln-guest: ERROR") {
			t.Fatalf("guest reported an error:\n%s", log)
		}
		if strings.Contains(log, "kiln-guest: sshd ready") {
			return log
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the guest did not come up within the timeout:\n%s", log)
		case <-exited:
			t.Fatalf("QEMU exited before the guest came up: %s\n%s", stderr.String(), log)
		case <-tick.C:
		}
	}
}

// TestPXEExtractExt4Symlinks reads the kernel and initrd through Debian's
// usual symlinks (one relative, one absolute) from an ext4 filesystem
// that fills the disk (no partition table), made by mkfs.ext4 -d.
func TestPXEExtractExt4Symlinks(t *testing.T) {
	testutil.Tool(t, "mkfs.ext4")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"boot/vmlinuz-6.1.0-kiln": "kernel bytes", "boot/initrd.img-6.1.0-kiln": "initrd bytes"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("vmlinuz-6.1.0-kiln", filepath.Join(tree, "boot", "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/boot/initrd.img-6.1.0-kiln", filepath.Join(tree, "initrd.img")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.raw")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	p := &pxe{KernelPath: "/boot/vmlinuz", InitrdPath: "/initrd.img"}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.extractBoot(img, out); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"vmlinuz": "kernel bytes", "initrd.img": "initrd bytes"} {
		if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	// A missing kernel names what was searched.
	p.KernelPath = "/boot/vmlinuz-missing"
	if err := p.extractBoot(img, out); err == nil || !strings.Contains(err.Error(), "vmlinuz-missing") {
		t.Errorf("missing kernel: %v", err)
	}
}
