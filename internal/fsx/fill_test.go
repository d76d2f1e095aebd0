package fsx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteWithCommitsOrLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.txt")
	if err := WriteWith(p, 0o640, func(w io.Writer) error { _, err := io.WriteString(w, "hello"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hello" {
		t.Fatalf("content %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	boom := errors.New("boom")
	err := WriteWith(filepath.Join(dir, "bad.txt"), 0o644, func(w io.Writer) error { io.WriteString(w, "part"); return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a failed write left files: %v", entries)
	}
}

func TestCopyContextStopsWhenCancelled(t *testing.T) {
	var progress []int64
	var out bytes.Buffer
	n, err := CopyContext(context.Background(), &out, strings.NewReader(strings.Repeat("x", 3<<20)), func(n int64) { progress = append(progress, n) })
	if err != nil || n != 3<<20 || out.Len() != 3<<20 || progress[len(progress)-1] != 3<<20 {
		t.Fatalf("n=%d err=%v progress=%v", n, err, progress)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CopyContext(ctx, io.Discard, strings.NewReader("x"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
}
