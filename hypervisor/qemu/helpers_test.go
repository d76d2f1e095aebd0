package qemu

import (
	"os"
	"testing"
)

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
