package provision

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/config"
)

func file(f config.File) *config.Provisioner {
	return &config.Provisioner{Type: "file", File: &f}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileUpload(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	local := h.env.Dir
	must(t, os.WriteFile(filepath.Join(local, "a.txt"), []byte("A"), 0o600))
	must(t, os.WriteFile(filepath.Join(local, "b.sh"), []byte("B"), 0o755))
	must(t, os.MkdirAll(filepath.Join(local, "tree", "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(local, "tree", "sub", "c"), []byte("C"), 0o644))

	for _, tc := range []struct {
		f     config.File
		check map[string]string // remote path -> content
	}{
		// A file to a file name; relative source against env.Dir.
		{config.File{Source: "a.txt", Destination: h.remote + "/renamed"}, map[string]string{"renamed": "A"}},
		// Files into a directory (trailing slash), created as needed.
		{config.File{Sources: []string{"a.txt", "b.sh"}, Destination: h.remote + "/dir/"}, map[string]string{"dir/a.txt": "A", "dir/b.sh": "B"}},
		// A directory without a trailing slash: the directory itself.
		{config.File{Source: "tree", Destination: h.remote + "/t1"}, map[string]string{"t1/tree/sub/c": "C"}},
		// With a trailing slash: its contents.
		{config.File{Source: "tree/", Destination: h.remote + "/t2"}, map[string]string{"t2/sub/c": "C"}},
		// Content to a file, and to a directory.
		{config.File{Content: "hello", Destination: h.remote + "/content.txt"}, map[string]string{"content.txt": "hello"}},
		{config.File{Content: "hi", Destination: h.remote + "/cdir/"}, map[string]string{"cdir/pkr-file-content": "hi"}},
	} {
		if err := Run(ctx, file(tc.f), h.env); err != nil {
			t.Errorf("%+v: %v", tc.f, err)
			continue
		}
		for name, want := range tc.check {
			if got := readFile(t, filepath.Join(h.remote, name)); got != want {
				t.Errorf("%+v: %s = %q, want %q", tc.f, name, got, want)
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(h.remote, "dir", "b.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode of b.sh not kept: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(h.remote, "t2", "tree")); !os.IsNotExist(err) {
		t.Errorf("tree/ uploaded the directory itself")
	}

	err := Run(ctx, file(config.File{Source: "missing", Destination: "x"}), h.env)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing source: %v", err)
	}
	err = Run(ctx, file(config.File{Source: "a.txt", Content: "x", Destination: "x"}), h.env)
	if err == nil || !strings.Contains(err.Error(), "conflicts") {
		t.Errorf("source and content: %v", err)
	}
}

func TestFileDownload(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	must(t, os.WriteFile(filepath.Join(h.remote, "log.txt"), []byte("LOG"), 0o600))
	must(t, os.MkdirAll(filepath.Join(h.remote, "logs", "x"), 0o755))
	must(t, os.WriteFile(filepath.Join(h.remote, "logs", "x", "y"), []byte("Y"), 0o644))

	run := func(src, dst string) {
		t.Helper()
		p := file(config.File{Source: src, Destination: dst, Direction: "download"})
		if err := Run(ctx, p, h.env); err != nil {
			t.Fatalf("download %s => %s: %v", src, dst, err)
		}
	}
	run(h.remote+"/log.txt", "out/renamed.txt") // relative to env.Dir, parents created
	if got := readFile(t, filepath.Join(h.env.Dir, "out", "renamed.txt")); got != "LOG" {
		t.Errorf("renamed.txt = %q", got)
	}
	run(h.remote+"/log.txt", "into/")
	if got := readFile(t, filepath.Join(h.env.Dir, "into", "log.txt")); got != "LOG" {
		t.Errorf("into/log.txt = %q", got)
	}
	run(h.remote+"/logs/", "tree")
	if got := readFile(t, filepath.Join(h.env.Dir, "tree", "x", "y")); got != "Y" {
		t.Errorf("tree/x/y = %q", got)
	}
	// No temporary files left next to the downloads.
	entries, _ := os.ReadDir(filepath.Join(h.env.Dir, "out"))
	if len(entries) != 1 {
		t.Errorf("out/ holds %v", entries)
	}

	// A failed download leaves no file under the final name.
	p := file(config.File{Source: h.remote + "/nope", Destination: "nope.txt", Direction: "download"})
	if err := Run(ctx, p, h.env); err == nil {
		t.Fatal("downloading a missing file succeeded")
	}
	if _, err := os.Stat(filepath.Join(h.env.Dir, "nope.txt")); !os.IsNotExist(err) {
		t.Errorf("partial file left: %v", err)
	}
	entries, _ = os.ReadDir(h.env.Dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
