// Package testutil holds the test helpers several packages need: finding
// the tools and fixtures a test depends on. The rule they share: outside CI
// a missing tool skips the test; in CI (CI=true, set by .ci/run) it fails
// it, because CI installs everything (make setup) and a skip there would
// hide a broken setup or a regression.
package testutil

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
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

// Buffer collects output written by other goroutines (a command's stdout,
// a console stream) for a test to read while they still write.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// update is -update: rewrite golden files from the current output.
var update = flag.Bool("update", false, "rewrite golden files from the current output")

// ReadGolden returns the golden file at path; with -update it first
// writes got there. A missing file fails the test with the hint to run
// -update.
func ReadGolden(t testing.TB, path string, got []byte) []byte {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	return want
}

// Golden checks got against the golden file at path (see ReadGolden).
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if want := ReadGolden(t, path, got); !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it after you checked it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
