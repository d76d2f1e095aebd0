// Package libvirttest gives tests a running system libvirtd. It installs
// nothing (make setup installs libvirt-daemon-system and libvirt-clients);
// it starts virtlogd and libvirtd by hand when their socket is missing,
// because CI containers have no systemd. In CI (CI=true) a missing daemon
// fails the test; elsewhere it skips.
package libvirttest

import (
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// SystemSocket is where libvirtd listens for qemu:///system.
const SystemSocket = "/var/run/libvirt/libvirt-sock"

var (
	once     sync.Once
	startErr string
)

// RequireSystem makes sure libvirtd serves qemu:///system.
func RequireSystem(t testing.TB) {
	t.Helper()
	once.Do(func() { startErr = start() })
	if startErr == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(startErr)
	}
	t.Skip(startErr)
}

func start() string {
	if _, err := os.Stat(SystemSocket); err == nil {
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
	if out, err := exec.Command("virtlogd", "-d").CombinedOutput(); err != nil {
		return "starting virtlogd: " + err.Error() + ": " + string(out)
	}
	if out, err := exec.Command("libvirtd", "-d").CombinedOutput(); err != nil {
		return "starting libvirtd: " + err.Error() + ": " + string(out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(SystemSocket); err == nil {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "libvirtd started but " + SystemSocket + " did not appear within 20s"
}
