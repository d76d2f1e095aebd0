// Package testutil holds the test helpers several packages need: finding
// the tools and fixtures a test depends on. The rule they share: outside CI
// a missing tool skips the test; in CI (CI=true, set by .ci/run) it fails
// it, because CI installs everything (make setup) and a skip there would
// hide a broken setup or a regression.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test for a missing dependency, or fails it in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI must have it: make setup installs it)", msg)
	}
	t.Skip(msg)
}

// Tool returns the path of an executable (qemu-img, qemu-system-x86_64,
// xorriso...), or calls Missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed: %v", name, err)
	}
	return p
}

// VMTest skips a test that boots a VM under -short, except in CI, where
// VM tests must run.
func VMTest(t testing.TB) {
	t.Helper()
	if testing.Short() {
		if InCI() {
			t.Fatal("VM tests must run in CI; do not pass -short")
		}
		t.Skip("VM test skipped with -short")
	}
}
