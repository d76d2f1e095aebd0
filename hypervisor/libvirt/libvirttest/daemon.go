// Package libvirttest gives tests a running system libvirtd. It installs
// nothing (make setup installs libvirt-daemon-system and libvirt-clients);
// it starts virtlogd and libvirtd by hand when nothing answers on their
// socket, because CI containers have no systemd. A socket file alone proves
// nothing: a daemon that died (or a machine image taken while one ran)
// leaves it behind, and connecting to it is refused. In CI (CI=true) a missing daemon
// fails the test; elsewhere it skips.
package libvirttest

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// SystemSocket is where libvirtd listens for qemu:///system.
const SystemSocket = "/var/run/libvirt/libvirt-sock"

// virtlogdSocket is where virtlogd listens; libvirtd needs it to start QEMU.
const virtlogdSocket = "/var/run/libvirt/virtlogd-sock"

var (
	once     sync.Once
	startErr string
)

// RequireSystem makes sure libvirtd serves qemu:///system.
func RequireSystem(t testing.TB) {
	t.Helper()
	once.Do(func() { startErr = start() })
	if startErr != "" {
		testutil.Missing(t, "%s", startErr)
	}
}

// answers reports whether a daemon accepts connections on the socket.
func answers(socket string) bool {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func start() string {
	shareKVM()
	if answers(SystemSocket) {
		return ""
	}
	if os.Geteuid() != 0 {
		return "libvirtd is not running and starting the system daemon needs root"
	}
	for _, bin := range []string{"virtlogd", "libvirtd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " not found (run `make setup`: it installs libvirt-daemon-system libvirt-clients)"
		}
	}
	// Both daemonize themselves (-d); they outlive the test run on
	// purpose, like a system service would.
	// Both unlink a stale socket before binding, and their pid files are
	// lock-based, so a dead daemon's leftovers do not stop a new one.
	if !answers(virtlogdSocket) {
		if out, err := exec.Command("virtlogd", "-d").CombinedOutput(); err != nil {
			return "starting virtlogd: " + err.Error() + ": " + string(out)
		}
	}
	if out, err := exec.Command("libvirtd", "-d").CombinedOutput(); err != nil {
		return "starting libvirtd: " + err.Error() + ": " + string(out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if answers(SystemSocket) {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "libvirtd started but " + SystemSocket + " did not answer within 20s"
}

// shareKVM gives /dev/kvm the group and mode Debian's udev rule gives it
// (root:kvm 0660) when, as in a container without udev, it kept the
// kernel's root 0600. libvirtd probes QEMU as root but runs it as
// libvirt-qemu (group kvm): when that user cannot open /dev/kvm, libvirtd
// throws its cached QEMU capabilities away and probes QEMU again on every
// domain define, ~50 s each here, and parallel builds time out. The tests'
// domains use TCG either way; this only restores what a normal host has.
func shareKVM() {
	const dev = "/dev/kvm"
	st, err := os.Stat(dev)
	if err != nil || os.Geteuid() != 0 || st.Mode().Perm()&0o060 != 0 {
		return
	}
	g, err := user.LookupGroup("kvm")
	if err != nil {
		return
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return
	}
	if os.Chown(dev, 0, gid) == nil {
		os.Chmod(dev, 0o660)
	}
}
