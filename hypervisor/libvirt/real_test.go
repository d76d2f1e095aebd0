package libvirt

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

	"github.com/kilnbuild/kiln/hypervisor/libvirt/libvirttest"
	"github.com/kilnbuild/kiln/internal/testutil"
)

func guestDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../testdata/guest/ensure.sh").Output()
	if err != nil {
		testutil.Missing(t, "test guest: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestRealDomainLifecycle boots the test guest on the system libvirtd
// from an uploaded volume, reads its serial console over the connection,
// powers it off with ACPI, downloads the disk and checks every resource is
// gone after cleanup.
func TestRealDomainLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, name, vol, src := systemGuest(ctx, t, "unit")
	// The upload is byte-exact.
	var down bytes.Buffer
	if err := c.Download(ctx, vol, &down); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	if sha256.Sum256(down.Bytes()) != sha256.Sum256(want) {
		t.Fatalf("downloaded volume (%d bytes) differs from the uploaded file (%d bytes)", down.Len(), len(want))
	}

	d, console, stop := bootGuest(ctx, t, c, name, vol, false)
	defer stop()
	if running, err := d.Running(ctx); err != nil || !running {
		t.Fatalf("Running = %v, %v", running, err)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if err := d.WaitStopped(sctx); err != nil {
		t.Fatalf("guest ignored the ACPI power button: %v\n%s", err, console.String())
	}
	if err := d.Undefine(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LookupDomain(ctx, name); !IsNotFound(err) {
		t.Fatalf("domain still defined after Undefine: %v", err)
	}
	if err := c.DeleteVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	if err := c.Download(ctx, vol, io.Discard); !IsNotFound(err) {
		t.Fatalf("volume still there after DeleteVolume: %v", err)
	}
}

// bootGuest defines and starts a domain of the test guest (disk vol) on
// an isolated network and waits for its sshd. stop destroys and undefines
// the domain and removes the network; defer it before the connection's
// Close and after the volume's deletion is deferred.
func bootGuest(ctx context.Context, t *testing.T, c *Conn, name string, vol Volume, vnc bool) (d *Domain, console *testutil.Buffer, stop func()) {
	t.Helper()
	if err := c.EnsureNetwork(ctx, "kiln-unit", &NetworkSpec{Name: "kiln-unit", Bridge: "kilnbr-unit", Address: "10.0.77.1", Netmask: "255.255.255.0"}); err != nil {
		t.Fatal(err)
	}
	d, err := c.Define(ctx, DomainSpec{Name: name, Type: "qemu", MemoryMiB: 256, VCPUs: 1, CPUModel: "max",
		Disks: []Volume{vol}, Network: "kiln-unit", VNC: vnc})
	if err != nil {
		c.DestroyNetwork(context.Background(), "kiln-unit")
		t.Fatal(err)
	}
	stop = func() {
		d.Destroy(context.Background())
		d.Undefine(context.Background())
		c.DestroyNetwork(context.Background(), "kiln-unit")
	}
	if err := d.Start(ctx); err != nil {
		stop()
		t.Fatal(err)
	}
	console = &testutil.Buffer{}
	if _, err := d.Console(ctx, console); err != nil {
		stop()
		t.Fatal(err)
	}
	for !strings.Contains(console.String(), "kiln-guest: sshd ready") {
		select {
		case <-ctx.Done():
			stop()
			t.Fatalf("no sshd ready marker on the console; got:\n%s", console.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return d, console, stop
}

// systemGuest connects to the system libvirtd (starting it if needed) and
// uploads the test guest's disk (src) as the volume of a new domain name.
// The volume and the connection go when the test ends, after its defers.
func systemGuest(ctx context.Context, t *testing.T, prefix string) (c *Conn, name string, vol Volume, src string) {
	t.Helper()
	testutil.VMTest(t)
	libvirttest.RequireSystem(t)
	src = filepath.Join(guestDir(t), "guest.qcow2")
	c, err := Dial(ctx, "qemu:///system", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.EnsurePool(ctx, "default", "/var/lib/libvirt/images"); err != nil {
		t.Fatal(err)
	}
	name = DomainName(prefix)
	vol = Volume{Pool: "default", Name: name + ".qcow2", Format: "qcow2"}
	if err := c.UploadFile(ctx, vol, src, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteVolume(context.Background(), vol) })
	return c, name, vol, src
}
