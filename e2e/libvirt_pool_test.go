package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/kilnbuild/kiln/hypervisor/libvirt"
)

// TestLibvirtPool runs three builds at once over a host pool of two URIs
// with libvirt_host_limit 1: qemu:///system and qemu+ssh:// through the
// test's loopback sshd. Both reach the same libvirtd, but to kiln they
// are two hosts, so the test can see on the one daemon what the pool did:
// two domains run at the same time, on different URIs, never more than
// two, and the third build waits until one of them is gone.
func TestLibvirtPool(t *testing.T) {
	requireLibvirt(t)
	if os.Geteuid() != 0 {
		t.Skip("the loopback sshd logs in as root to reach the system libvirtd")
	}
	sshURI := startSSHD(t)
	// The guests share the kiln-e2e network while they run: each needs
	// its own address.
	dirB, dirC := guestAt(t, "10.0.2.16"), guestAt(t, "10.0.2.17")
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	watch := watchDomains(t)
	k := e.start(t, "build", "-parallel-builds=3", "-var", "guest_dir="+guestDir, "-var", "guest_dir_b="+dirB,
		"-var", "guest_dir_c="+dirC, "-var", "ssh_uri="+sshURI, "-var", "out="+out, template("libvirt-pool.pkr.hcl"))
	code, took := k.wait(10 * time.Minute)
	polls := watch()
	log := k.output()
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, log)
	}
	t.Logf("three builds on two hosts took %s", took.Round(time.Second))
	e.assertClean(t)
	assertNoLibvirtLeftovers(t)
	for _, s := range []string{"a", "b", "c"} {
		checkLibvirtOutput(t, e, out, s, s, "qcow2")
	}
	if n := bootedSerialLogs(e); n != 3 {
		t.Errorf("%d serial logs show the guest's boot, want 3", n)
	}

	// Which domain each build started, and on which URI (as kiln prints it).
	uriOf := map[string]string{} // domain -> URI
	buildOf := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^==> (lv\.libvirt\.[abc]): Starting domain (\S+) \(qemu\) on (\S+)$`).FindAllStringSubmatch(log, -1) {
		buildOf[m[2]], uriOf[m[2]] = m[1], m[3]
	}
	if len(uriOf) != 3 {
		t.Fatalf("want three builds starting a domain, found %v:\n%s", buildOf, log)
	}
	used := map[string]int{}
	for _, u := range uriOf {
		if u != "qemu:///system" && u != sshURI {
			t.Errorf("a domain started on %q, which is not in libvirt_uris", u)
		}
		used[u]++
	}
	if len(used) != 2 {
		t.Errorf("the builds did not use both hosts: %v", uriOf)
	}

	// What libvirtd saw. Polls list the running domains; each problem is
	// reported at the first poll that shows it.
	var overlap, tooMany, sameHost bool
	first, last := map[string]int{}, map[string]int{}
	for i, running := range polls {
		var ours []string
		for _, d := range running {
			if _, ok := uriOf[d]; ok {
				ours = append(ours, d)
				if _, ok := first[d]; !ok {
					first[d] = i
				}
				last[d] = i
			}
		}
		if len(ours) > 2 && !tooMany {
			tooMany = true
			t.Errorf("%d domains ran at once on two hosts with libvirt_host_limit 1: %v", len(ours), ours)
		}
		overlap = overlap || len(ours) >= 2
		for j := range ours {
			for _, other := range ours[j+1:] {
				if uriOf[ours[j]] == uriOf[other] && !sameHost {
					sameHost = true
					t.Errorf("%s and %s ran at once on the same host %s", ours[j], other, uriOf[other])
				}
			}
		}
	}
	if !overlap {
		t.Errorf("the builds never ran at the same time (%d polls of libvirtd)", len(polls))
	}
	if len(first) != 3 {
		t.Fatalf("libvirtd showed %d of the 3 domains running (%d polls): %v", len(first), len(polls), first)
	}

	// Exactly one build found both hosts busy, and its domain started only
	// after another build's domain was gone from its host.
	waited := regexp.MustCompile(`(?m)^==> (lv\.libvirt\.[abc]): Waiting for a libvirt host`).FindAllStringSubmatch(log, -1)
	if len(waited) != 1 {
		t.Fatalf("%d builds said they wait for a libvirt host, want exactly 1:\n%s", len(waited), log)
	}
	var late string
	for d, b := range buildOf {
		if b == waited[0][1] {
			late = d
		}
	}
	var freedBy string
	for d := range uriOf {
		if d != late && uriOf[d] == uriOf[late] && last[d] < first[late] {
			freedBy = d
		}
	}
	if freedBy == "" {
		t.Errorf("%s waited, but its domain %s did not follow another domain on %s (first seen at poll %d; %v to %v)",
			waited[0][1], late, uriOf[late], first[late], first, last)
	}
}

// watchDomains polls the local libvirtd for running domains until the
// returned function is called, which returns what each poll saw.
func watchDomains(t *testing.T) func() [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := libvirt.Dial(ctx, "qemu:///system", libvirt.DialOptions{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	var polls [][]string
	var pollErr error
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			doms, _, err := c.Raw().ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive)
			if err != nil {
				pollErr = err
				return
			}
			var names []string
			for _, d := range doms {
				names = append(names, d.Name)
			}
			polls = append(polls, names)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() [][]string {
		close(stop)
		<-done
		c.Close()
		if pollErr != nil {
			t.Fatalf("listing the running domains: %v", pollErr)
		}
		return polls
	}
}

// guestAt makes a copy of the test guest that takes addr instead of
// 10.0.2.15. Returns a directory with guest.qcow2 and SHA256SUMS, as
// guestDir has.
func guestAt(t *testing.T, addr string) string {
	t.Helper()
	return guestWithNet(t, strings.Replace(guestStaticNet, "10.0.2.15/", addr+"/", 1), nil)
}

// guestStaticNet is how the test guest's boot script configures eth0.
const guestStaticNet = "ip addr add 10.0.2.15/24 dev eth0\n\tip route add default via 10.0.2.2"

// guestWithNet makes a copy of the test guest whose boot script runs
// setup (shell, after eth0 is up) instead of guestStaticNet, with files
// (path in the initramfs -> content, executable; their directories must
// be in the guest already: the kernel creates none) added: a second
// initramfs archive appended to the guest's initrd.img carries them and
// the new boot script (the kernel unpacks the archives in order, later
// files over earlier ones).
func guestWithNet(t *testing.T, setup string, files map[string]string) string {
	t.Helper()
	dir, work := t.TempDir(), t.TempDir()
	run := func(stdin io.Reader, name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Stdin = work, stdin
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	raw := filepath.Join(work, "guest.raw")
	part := raw + "@@1048576" // the FAT partition, with /boot
	run(nil, "qemu-img", "convert", "-O", "raw", filepath.Join(guestDir, "guest.qcow2"), raw)
	run(nil, "mcopy", "-i", part, "::/boot/initrd.img", "initrd.img")
	rcS := string(run(nil, "sh", "-c", "gzip -dc initrd.img | cpio -i --quiet --to-stdout etc/init.d/rcS"))
	if !strings.Contains(rcS, guestStaticNet) {
		t.Fatalf("the guest's boot script does not configure eth0 with %q:\n%s", guestStaticNet, rcS)
	}
	files = maps.Clone(files)
	if files == nil {
		files = map[string]string{}
	}
	files["etc/init.d/rcS"] = strings.Replace(rcS, guestStaticNet, setup, 1)
	var list strings.Builder
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(files[name]), 0o755); err != nil {
			t.Fatal(err)
		}
		list.WriteString(name + "\n")
	}
	run(strings.NewReader(list.String()), "sh", "-c", "cpio -o --quiet -H newc -R 0:0 | gzip -n >>initrd.img")
	run(nil, "mcopy", "-o", "-i", part, "initrd.img", "::/boot/initrd.img")
	image := filepath.Join(dir, "guest.qcow2")
	run(nil, "qemu-img", "convert", "-O", "qcow2", raw, image)
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	sums := fmt.Sprintf("%x  guest.qcow2\n", sha256.Sum256(b))
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
