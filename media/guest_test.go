package media

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// TestSeedISOInLinuxGuest is the test that matters for cloud-init: a real
// Linux kernel mounts the seed ISO (isofs, as cloud-init's NoCloud does)
// and must see the exact names, modes and bytes, and the label "cidata".
// It boots the kernel and initrd of the test installer ISO (taken out with
// ExtractFromISO, which so also reads a real grub-mkrescue hybrid ISO) under
// QEMU/TCG, with the seed ISO as the only CD. About 20-40 s; skipped with
// -short (not in CI), like the e2e VM tests.
func TestSeedISOInLinuxGuest(t *testing.T) {
	testutil.VMTest(t)
	qemu := testutil.Tool(t, "qemu-system-x86_64")
	ensure := exec.Command("bash", "../testdata/installer/ensure.sh")
	ensure.Stderr = os.Stderr
	out, err := ensure.Output()
	if err != nil {
		t.Fatalf("building the test installer: %v", err)
	}
	installer := filepath.Join(strings.TrimSpace(string(out)), "installer.iso")

	work := t.TempDir()
	kernel, initrd := filepath.Join(work, "vmlinuz"), filepath.Join(work, "initrd.gz")
	if err := ExtractFromISO(context.Background(), installer, map[string]string{
		"install/vmlinuz":   kernel,
		"install/initrd.gz": initrd,
	}); err != nil {
		t.Fatal(err)
	}
	// Cross-check the extraction against xorriso's.
	ref := filepath.Join(work, "ref-vmlinuz")
	run(t, "xorriso", "-osirrox", "on", "-indev", installer, "-extract", "/install/vmlinuz", ref)
	if a, b := digest(t, kernel), digest(t, ref); a != b {
		t.Fatalf("extracted kernel %s, xorriso's %s", a, b)
	}

	// The installer's init mounts the first iso9660 holding
	// install/guest.info at /cdrom: ours.
	entries, w := sample(t)
	entries = append(entries, Entry{Path: "install/guest.info", Content: []byte("seed\n")})
	w["install"] = want{dir: true, mode: 0o755}
	w["install/guest.info"] = want{mode: 0o644, content: []byte("seed\n")}
	seed := filepath.Join(work, "seed.iso")
	if err := WriteISO(context.Background(), seed, "cidata", entries); err != nil {
		t.Fatal(err)
	}

	// Boot the installer's kernel and initramfs with our own /init
	// appended (a later cpio archive overrides earlier files): it loads the
	// installer's drivers, mounts the CD as cloud-init would (mount -t
	// iso9660, default options) and reports one line per path.
	script := `#!/bin/sh
. /lib/kiln.sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
while read -r m; do insmod "/lib/modules/$m.ko"; done </etc/modules.order
mount_cd() { [ -b /dev/sr0 ] && mount -t iso9660 -o ro /dev/sr0 /cdrom 2>/dev/null; }
if ! wait_for 100 mount_cd; then echo "KILN-ERROR no CD"; poweroff -f; fi
echo "KILN-LABEL $(dd if=/dev/sr0 bs=1 skip=32808 count=32 2>/dev/null)"
cd /cdrom
find . | while read -r p; do
	if [ -d "$p" ]; then h=-; else h=$(sha256sum "$p" | cut -d' ' -f1); fi
	echo "KILN-ENTRY $(stat -c %A "$p") $h $p"
done
cd /
umount /cdrom # a second mount of the same device would share the first one's options
mkdir /joliet
mount -t iso9660 -o ro,norock /dev/sr0 /joliet && cd /joliet && find . | while read -r p; do
	echo "KILN-JOLIET $p"
done
echo KILN-DONE
poweroff -f
`
	appendInit(t, initrd, script)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-machine", "pc", "-m", "512",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0",
		"-cdrom", seed, "-nic", "none")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the console as it comes, and stop at an error line instead of
	// waiting for the timeout.
	var serial bytes.Buffer
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		serial.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "KILN-ERROR") {
			cancel()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("qemu: %v\nserial:\n%s", err, serial.String())
	}

	got := map[string]string{}
	var label string
	joliet := map[string]bool{}
	sc := bufio.NewScanner(&serial)
	sc.Buffer(nil, 1<<20)
	done := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "KILN-LABEL "):
			label = line
		case strings.HasPrefix(line, "KILN-ENTRY "):
			f := strings.SplitN(line, " ", 4)
			if len(f) == 4 && f[3] != "." {
				got[strings.TrimPrefix(f[3], "./")] = f[1] + " " + f[2]
			}
		case strings.HasPrefix(line, "KILN-JOLIET ./"):
			joliet[strings.TrimPrefix(line, "KILN-JOLIET ./")] = true
		case line == "KILN-DONE":
			done = true
		}
	}
	if !done {
		t.Fatalf("the guest did not finish its report; serial:\n%s", serial.String())
	}
	if label != "KILN-LABEL cidata"+strings.Repeat(" ", 26) {
		t.Errorf("volume identifier read in the guest: %q", label)
	}
	wantSeen := map[string]string{}
	for p, x := range w {
		m, h := x.mode.String(), "-"
		if x.dir {
			m = (x.mode | os.ModeDir).String()
		} else {
			s := sha256.Sum256(x.content)
			h = hex.EncodeToString(s[:])
		}
		// The kernel shows Rock Ridge modes as recorded.
		wantSeen[p] = m + " " + h
	}
	if diff := cmp.Diff(wantSeen, got); diff != "" {
		t.Errorf("what Linux sees on the seed ISO (-want +got):\n%s", diff)
	}
	// Mounted without Rock Ridge, Linux reads the Joliet tree, as Windows
	// does: nested directories and shortened names must be there.
	for _, p := range []string{
		"user-data", "MixedCase.Cfg", "mixedcase~1.cfg", deepPath,
		"scripts/nested/" + strings.Repeat("a-long-name-", 5)[:59] + ".yaml",
		"many/file-with-a-longer-name-149.txt",
	} {
		if !joliet[p] {
			t.Errorf("Joliet tree in the guest lacks %s; it has %v", p, keys(joliet))
		}
	}
}

func digest(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// appendInit appends to a gzip'd initramfs a cpio (newc) archive holding
// /init with the given script.
func appendInit(t *testing.T, initrd, script string) {
	f, err := os.OpenFile(initrd, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(make([]byte, (4-st.Size()%4)%4)) // the kernel wants archives 4-byte aligned
	pad := func() {
		for (int(st.Size())+b.Len())%4 != 0 {
			b.WriteByte(0)
		}
	}
	add := func(name string, mode int, data string) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name + "\x00")
		pad()
		b.WriteString(data)
		pad()
	}
	add("init", 0o100755, script)
	add("TRAILER!!!", 0, "")
	if _, err := f.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}
