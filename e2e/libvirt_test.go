package e2e

import (
	"context"
	"fmt"
	"image/color"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/kilnbuild/kiln/hypervisor/libvirt"
	"github.com/kilnbuild/kiln/hypervisor/libvirt/libvirttest"
)

// e2eNetwork matches the test guest's static network: the host is
// 10.0.2.2 on the bridge, as it is on QEMU's user network. No DHCP, so
// libvirt needs no dnsmasq.
var e2eNetwork = libvirt.NetworkSpec{Name: "kiln-e2e", Bridge: "kilnbr-e2e", Address: "10.0.2.2", Netmask: "255.255.255.0"}

// requireLibvirt starts libvirtd if needed (libvirttest) and makes sure
// the e2e network and the default storage pool exist.
func requireLibvirt(t *testing.T) {
	t.Helper()
	requireVM(t)
	libvirttest.RequireSystem(t)
	useNetwork(t, &e2eNetwork)
}

// useNetwork creates the libvirt network spec (afresh: one left by a
// crashed run may have a stale definition) and removes it after the test:
// libvirt 9.0 without dnsmasq segfaults at startup when it finds a network
// still active from before a restart.
func useNetwork(t *testing.T, spec *libvirt.NetworkSpec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := libvirt.Dial(ctx, "qemu:///system", libvirt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.DestroyNetwork(ctx, spec.Name)
	if err := c.EnsureNetwork(ctx, spec.Name, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := libvirt.Dial(ctx, "qemu:///system", libvirt.DialOptions{}); err == nil {
			c.DestroyNetwork(ctx, spec.Name)
			c.Close()
		}
	})
}

// assertNoLibvirtLeftovers checks that no domain or volume of the builds
// (their names start with kiln-lv-) is left on the host.
func assertNoLibvirtLeftovers(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := libvirt.Dial(ctx, "qemu:///system", libvirt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	doms, _, err := c.Raw().ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive|golibvirt.ConnectListDomainsInactive)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		if strings.HasPrefix(d.Name, "kiln-lv-") {
			t.Errorf("domain left on the host: %s", d.Name)
		}
	}
	pool, err := c.Raw().StoragePoolLookupByName("default")
	if err != nil {
		t.Fatal(err)
	}
	vols, _, err := c.Raw().StoragePoolListAllVolumes(pool, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if strings.HasPrefix(v.Name, "kiln-lv-") {
			t.Errorf("volume left on the host: %s", v.Name)
		}
	}
}

func checkLibvirtOutput(t *testing.T, e *env, out, dir, source, format string) {
	t.Helper()
	image := filepath.Join(out, dir, "guest")
	info, err := exec.Command("qemu-img", "info", image).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", image, err, info)
	}
	if !strings.Contains(string(info), "file format: "+format) {
		t.Errorf("%s is not %s:\n%s", image, format, info)
	}
	if got := readGuestFile(t, image, "provisioned.txt"); got != "provisioned by "+source+" on libvirt\n" {
		t.Errorf("%s: provisioned.txt = %q", source, got)
	}
	if got := readGuestFile(t, image, "payload.txt"); got != "payload uploaded by the file provisioner\n" {
		t.Errorf("%s: payload.txt = %q", source, got)
	}
}

// serialLogs returns the saved serial logs that show the guest booted:
// read over the libvirt console stream, not from a file on the host.
func bootedSerialLogs(e *env) int {
	logs, _ := filepath.Glob(filepath.Join(e.LogDir, "*", "serial.log"))
	n := 0
	for _, l := range logs {
		if b, _ := os.ReadFile(l); strings.Contains(string(b), "kiln-guest: sshd ready") {
			n++
		}
	}
	return n
}

// TestLibvirtSystem builds the test guest through qemu:///system twice:
// as a libvirt source (qcow2) and as a qemu source with libvirt_uri (raw).
func TestLibvirtSystem(t *testing.T) {
	requireLibvirt(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	// One at a time: both guests use the static address 10.0.2.15.
	log := e.mustBuild(t, 15*time.Minute, "build", "-parallel-builds=1", "-var", "guest_dir="+guestDir, "-var", "out="+out, template("libvirt.pkr.hcl"))
	assertNoLibvirtLeftovers(t)
	checkLibvirtOutput(t, e, out, "libvirt", "guest", "qcow2")
	checkLibvirtOutput(t, e, out, "qemu", "onlibvirt", "raw")
	for _, want := range []string{"Connecting to libvirt at qemu:///system", "Uploading", "Downloading volume", "kiln-e2e: provisioning onlibvirt"} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := bootedSerialLogs(e); n != 2 {
		t.Errorf("%d serial logs show the guest's boot, want 2", n)
	}
	if strings.Contains(log, "kiln-root-pw-3f9a") {
		t.Error("output shows the ssh password")
	}
}

// TestLibvirtOverSSH proves the remote path: kiln talks to libvirtd only
// through qemu+ssh:// to an sshd of the test's own on loopback, so disks
// go up and down as volume streams over SSH.
func TestLibvirtOverSSH(t *testing.T) {
	requireLibvirt(t)
	if os.Geteuid() != 0 {
		t.Skip("the loopback sshd logs in as root to reach the system libvirtd")
	}
	uri := startSSHD(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	log := e.mustBuild(t, 15*time.Minute, "build", "-only", "lv.libvirt.guest", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "uri="+uri, template("libvirt.pkr.hcl"))
	assertNoLibvirtLeftovers(t)
	checkLibvirtOutput(t, e, out, "libvirt", "guest", "qcow2")
	if !strings.Contains(log, "Connecting to libvirt at qemu+ssh://root@127.0.0.1") {
		t.Errorf("the build did not go over ssh:\n%s", log)
	}
	if n := bootedSerialLogs(e); n != 1 {
		t.Errorf("%d serial logs show the guest's boot, want 1", n)
	}
}

// startSSHD runs sshd on a free loopback port with a temporary host key
// and an authorized key of its own, and returns the libvirt URI for it.
func startSSHD(t *testing.T) string {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("sshd not found (make setup installs openssh-server): %v", err)
	}
	dir := t.TempDir()
	for _, k := range []string{"host_key", "user_key"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "user_key.pub"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
AllowStreamLocalForwarding yes
`, port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfgPath)
	logf, _ := os.Create(filepath.Join(dir, "sshd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Logf("sshd log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on port %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?keyfile=%s&no_verify=1", port, filepath.Join(dir, "user_key"))
}

// TestLibvirtCleanup: Ctrl-C during provisioning removes the domain and
// its volumes from the host; -on-error=abort keeps them, says where they
// are, and leaves them after kiln exits.
func TestLibvirtCleanup(t *testing.T) {
	requireLibvirt(t)
	t.Run("interrupt", func(t *testing.T) {
		e := newEnv(t)
		out := filepath.Join(e.Dir, "out")
		k := e.start(t, "build", "-only", "lv.libvirt.guest", "-var", "fault=hang", "-var", "guest_dir="+guestDir, "-var", "out="+out, template("libvirt.pkr.hcl"))
		k.waitLine("kiln-e2e: hanging now", 5*time.Minute)
		k.cmd.Process.Signal(os.Interrupt)
		code, took := k.wait(time.Minute)
		if code == 0 {
			t.Fatalf("interrupted build exited 0:\n%s", k.output())
		}
		if took > 20*time.Second {
			t.Errorf("kiln took %s to clean up after Ctrl-C", took)
		}
		if _, err := os.Stat(filepath.Join(out, "libvirt")); !os.IsNotExist(err) {
			t.Errorf("output directory exists after an interrupted build")
		}
		assertFailureScreen(t, e, k.output())
		e.assertClean(t)
		assertNoLibvirtLeftovers(t)
	})
	t.Run("domain-destroyed", func(t *testing.T) {
		e := newEnv(t)
		out := filepath.Join(e.Dir, "out")
		k := e.start(t, "build", "-only", "lv.libvirt.guest", "-var", "fault=hang", "-var", "guest_dir="+guestDir, "-var", "out="+out, template("libvirt.pkr.hcl"))
		k.waitLine("kiln-e2e: hanging now", 5*time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := libvirt.Dial(ctx, "qemu:///system", libvirt.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		doms, _, err := c.Raw().ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive)
		if err != nil {
			t.Fatal(err)
		}
		var killed int
		for _, d := range doms {
			if strings.HasPrefix(d.Name, "kiln-lv-libvirt-guest-") {
				c.Raw().DomainDestroy(d)
				killed++
			}
		}
		if killed != 1 {
			t.Fatalf("want one running build domain, found %d", killed)
		}
		code, took := k.wait(time.Minute)
		if code == 0 {
			t.Fatalf("build succeeded after its domain was destroyed:\n%s", k.output())
		}
		if took > 10*time.Second {
			t.Errorf("kiln took %s to notice the domain stopped", took)
		}
		if !strings.Contains(k.output(), "stopped") {
			t.Errorf("error does not say the domain stopped:\n%s", k.output())
		}
		e.assertClean(t)
		assertNoLibvirtLeftovers(t)
	})
	t.Run("abort", func(t *testing.T) {
		e := newEnv(t)
		out := filepath.Join(e.Dir, "out")
		k := e.start(t, "build", "-on-error=abort", "-only", "lv.libvirt.guest", "-var", "fault=fail", "-var", "guest_dir="+guestDir, "-var", "out="+out, template("libvirt.pkr.hcl"))
		k.waitLine("press Ctrl-C", 5*time.Minute)
		k.cmd.Process.Signal(os.Interrupt)
		if code, _ := k.wait(time.Minute); code == 0 {
			t.Fatalf("failed build exited 0")
		}
		log := k.output()
		var domain, volume string
		for _, line := range strings.Split(log, "\n") {
			if _, rest, ok := strings.Cut(line, "domain: "); ok && domain == "" {
				domain, _, _ = strings.Cut(rest, " ")
			}
			if _, rest, ok := strings.Cut(line, "volume: default/"); ok && volume == "" {
				volume, _, _ = strings.Cut(rest, " ")
			}
		}
		if !strings.HasPrefix(domain, "kiln-lv-") || !strings.HasPrefix(volume, domain) {
			t.Fatalf("abort output does not name the kept domain and volume (%q, %q):\n%s", domain, volume, log)
		}
		assertFailureScreen(t, e, log)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := libvirt.Dial(ctx, "qemu:///system", libvirt.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		vol := libvirt.Volume{Pool: "default", Name: volume}
		d, err := c.LookupDomain(ctx, domain)
		if err != nil {
			t.Errorf("the domain was not kept: %v", err)
		} else {
			if running, _ := d.Running(ctx); !running {
				t.Errorf("the kept domain is not running")
			}
			d.Destroy(ctx)
			d.Undefine(ctx)
		}
		if _, err := c.VolumePath(ctx, vol); err != nil {
			t.Errorf("the volume was not kept: %v", err)
		}
		if err := c.DeleteVolume(ctx, vol); err != nil {
			t.Error(err)
		}
		assertNoLibvirtLeftovers(t)
	})
}

// assertFailureScreen checks a build that failed with its domain running
// saved the domain's screen, taken over the libvirt connection: a PNG of
// the VGA text mode (720x400) the test guest leaves its screen in, with
// SeaBIOS's and SYSLINUX's lines on it.
func assertFailureScreen(t *testing.T, e *env, log string) {
	t.Helper()
	shots, _ := filepath.Glob(filepath.Join(e.LogDir, "*", "failure-screen.png"))
	if len(shots) != 1 {
		debug, _ := os.ReadFile(filepath.Join(filepath.Dir(e.LogDir), "debug.log"))
		var why []string
		for _, l := range strings.Split(string(debug), "\n") {
			if strings.Contains(strings.ToLower(l), "screen") {
				why = append(why, l)
			}
		}
		t.Errorf("want one failure-screen.png in %s, found %v; the debug log says:\n%s", e.LogDir, shots, strings.Join(why, "\n"))
		return
	}
	if !strings.Contains(log, "screenshot of the VM screen: "+shots[0]) {
		t.Errorf("the build does not say where its screenshot is:\n%s", log)
	}
	f, err := os.Open(shots[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("failure-screen.png: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != 720 || b.Dy() != 400 {
		t.Errorf("failure-screen.png is %dx%d, want the 720x400 of VGA text mode", b.Dx(), b.Dy())
	}
	bg := color.RGBAModel.Convert(img.At(b.Min.X, b.Min.Y))
	var text int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) != bg {
				text++
			}
		}
	}
	if text < 2000 {
		t.Errorf("failure-screen.png has %d pixels off the background: no text on it", text)
	}
}

// TestLibvirtTyping types 300 characters, shifted ones included, through
// virDomainSendKey into a guest that echoes each typed line to its serial
// console (read over the libvirt console stream): every character must
// arrive, in order.
func TestLibvirtTyping(t *testing.T) {
	requireLibvirt(t)
	dir := installerDir(t)
	e := newEnv(t)
	e.mustBuild(t, 5*time.Minute, "build", "-var", "installer_dir="+dir, "-var", "out="+filepath.Join(e.Dir, "out"),
		"-var", "text="+typingText, template("libvirt-typing.pkr.hcl"))
	assertNoLibvirtLeftovers(t)
	assertTyped(t, serialLog(t, e), typingText)
	assertBootStepScreen(t, e) // taken over the libvirt connection
}
