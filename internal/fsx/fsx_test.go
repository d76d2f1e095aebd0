package fsx

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// names lists the entries of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new content"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new content" {
		t.Fatalf("content = %q, %v", got, err)
	}
	st, _ := os.Stat(p)
	// The replacement is a new file: its mode is perm (under umask 022 at most).
	if st.Mode().Perm()&0o040 == 0 {
		t.Errorf("mode = %v, want group read from perm 0640", st.Mode())
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("directory holds %v, want only a.txt", n)
	}
}

func TestWriteFileFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory at the target makes the final rename fail,
	// after the temporary file was created and written.
	p := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(p, []byte("data"), 0o644)
	if err == nil {
		t.Fatal("WriteFile over a non-empty directory succeeded")
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "target" {
		t.Errorf("directory holds %v after failed write, want only target", n)
	}
	// Missing parent directory: fails before creating anything.
	if err := WriteFile(filepath.Join(dir, "nope", "x"), nil, 0o644); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func TestCreateCommitAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "disk.img")
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(f.Name()), ".disk.img.tmp-") || filepath.Dir(f.Name()) != dir {
		t.Errorf("temp name %q, want .disk.img.tmp-* in %s", f.Name(), dir)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("final path visible before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "hello" {
		t.Errorf("content %q", got)
	}
	if err := f.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if err := f.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "hello" {
		t.Errorf("Abort after Commit changed the file: %q", got)
	}

	g, err := Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("x"))
	if err := g.Abort(); err != nil {
		t.Fatal(err)
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "disk.img" {
		t.Errorf("after Abort directory holds %v", n)
	}
}

// holesSupported reports whether dir's file system stores a truncated
// file without allocating blocks.
func holesSupported(t *testing.T, dir string) bool {
	p := filepath.Join(dir, "probe")
	defer os.Remove(p)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 8<<20); err != nil {
		t.Fatal(err)
	}
	return allocated(t, p) < 1<<20
}

func allocated(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestCopyFileSparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	// 1 MiB data, 6 MiB explicit zeros, 3 bytes data not block aligned,
	// then 4 MiB of trailing zeros: checks merging, holes and the length.
	var want bytes.Buffer
	want.Write(bytes.Repeat([]byte{0xAB}, 1<<20))
	want.Write(make([]byte, 6<<20))
	want.Write([]byte{1, 2, 3})
	want.Write(make([]byte, 4<<20))
	if err := os.WriteFile(src, want.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o640); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst.raw")
	if err := CopyFile(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("copy differs (len %d, want %d)", len(got), want.Len())
	}
	st, _ := os.Stat(dst)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 from source", st.Mode())
	}
	if holesSupported(t, dir) {
		if a := allocated(t, dst); a > 2<<20 {
			t.Errorf("copy allocates %d bytes, want about 1 MiB (zeros as holes)", a)
		}
	} else {
		t.Log("file system without holes: skipping the allocation check")
	}
}

func TestCopyFileCancelAndErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := CopyFile(ctx, filepath.Join(dir, "dst"), src)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled copy: err = %v, want context.Canceled", err)
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("cancelled copy left %v", n)
	}
	if err := CopyFile(context.Background(), filepath.Join(dir, "dst"), filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: err = %v", err)
	}
	if err := CopyFile(context.Background(), filepath.Join(dir, "dst"), dir); err == nil {
		t.Error("copying a directory succeeded")
	}
}

func mkdirWith(t *testing.T, dir, file, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readIn(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenameDir(t *testing.T) {
	root := t.TempDir()
	src, dst := filepath.Join(root, "build.tmp"), filepath.Join(root, "output")

	mkdirWith(t, src, "disk", "v1")
	if err := RenameDir(src, dst, false); err != nil {
		t.Fatal(err)
	}
	if readIn(t, dst, "disk") != "v1" {
		t.Error("dst content wrong after first move")
	}

	mkdirWith(t, src, "disk", "v2")
	if err := RenameDir(src, dst, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("move over existing without replace: err = %v, want ErrExist", err)
	}
	if readIn(t, dst, "disk") != "v1" || readIn(t, src, "disk") != "v2" {
		t.Error("refused move changed a directory")
	}

	if err := RenameDir(src, dst, true); err != nil {
		t.Fatal(err)
	}
	if readIn(t, dst, "disk") != "v2" {
		t.Error("dst not replaced")
	}
	if n := names(t, root); len(n) != 1 || n[0] != "output" {
		t.Errorf("after replace root holds %v, want only output", n)
	}
}

func TestRenameDirFailureRestoresOld(t *testing.T) {
	root := t.TempDir()
	// dst inside src: moving src there fails (EINVAL) after dst was
	// already moved aside, exercising the restore path.
	src := filepath.Join(root, "src")
	dst := filepath.Join(src, "child")
	mkdirWith(t, dst, "f", "old")
	err := RenameDir(src, dst, true)
	if err == nil {
		t.Fatal("moving a directory into itself succeeded")
	}
	if readIn(t, dst, "f") != "old" {
		t.Error("old directory not restored")
	}
	if n := names(t, src); len(n) != 1 || n[0] != "child" {
		t.Errorf("src holds %v, want only child (no .old leftovers)", n)
	}
}
