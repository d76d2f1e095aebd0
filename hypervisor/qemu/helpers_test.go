package qemu

import (
	"os"
	"os/exec"
	"testing"
)

// qemuBinary finds qemu-system-x86_64. Without it the test is skipped,
// except in CI (CI set), where a missing QEMU is a failure: CI installs it.
func qemuBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but qemu-system-x86_64 is not in PATH: %v", err)
		}
		t.Skip("qemu-system-x86_64 not in PATH")
	}
	return p
}

// shortTempDir is a t.TempDir with a short path: unix socket paths are
// limited to 107 bytes, and t.TempDir embeds the (long) test name.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
