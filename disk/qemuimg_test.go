package disk

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// logTool returns a Tool whose log lines are collected.
func logTool(t *testing.T) (Tool, func() []string) {
	var mu sync.Mutex
	var lines []string
	tool := Tool{Log: func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		line := fmt.Sprintf(f, a...)
		lines = append(lines, line)
		t.Log(line)
	}}
	return tool, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), lines...) }
}

// writeRandomRaw writes a raw image of size bytes whose first dataBytes
// are random.
func writeRandomRaw(t *testing.T, p string, size, dataBytes int64) {
	t.Helper()
	buf := make([]byte, dataBytes)
	rand.Read(buf)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

func entries(t *testing.T, dir string) []string {
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

func TestCreateInfoResizeCheck(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	ctx := context.Background()
	tool, logs := logTool(t)
	dir := t.TempDir()
	for _, format := range []string{"qcow2", "raw"} {
		p := filepath.Join(dir, "disk."+format)
		if err := tool.Create(ctx, p, format, 64<<20, "", "", nil); err != nil {
			t.Fatal(err)
		}
		info, err := tool.Info(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Format != format || info.VirtualSize != 64<<20 || info.BackingFile != "" {
			t.Errorf("%s: info %+v", format, info)
		}
		if err := tool.Resize(ctx, p, format, 128<<20); err != nil {
			t.Fatal(err)
		}
		if info, _ := tool.Info(ctx, p); info.VirtualSize != 128<<20 {
			t.Errorf("%s: after resize virtual size %d, want %d", format, info.VirtualSize, 128<<20)
		}
		if err := tool.Check(ctx, p, format); err != nil {
			t.Errorf("%s: check: %v", format, err)
		}
	}
	want := "disk: qemu-img create -f qcow2 " + filepath.Join(dir, "disk.qcow2") + " 67108864"
	if l := logs(); len(l) == 0 || l[0] != want {
		t.Errorf("first log line %q, want %q", l, want)
	}
	// extra options reach qemu-img.
	p := filepath.Join(dir, "zstd.qcow2")
	if err := tool.Create(ctx, p, "qcow2", 1<<20, "", "", []string{"-o", "compression_type=zstd"}); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("qemu-img", "info", p).CombinedOutput()
	if !strings.Contains(string(out), "compression type: zstd") {
		t.Errorf("extra -o not applied: %s", out)
	}
}

func TestCheckCorrupt(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "d.qcow2")
	var tool Tool
	if err := tool.Create(ctx, p, "qcow2", 1<<20, "", "", nil); err != nil {
		t.Fatal(err)
	}
	// Overwrite the header magic: qemu-img can no longer open it.
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt([]byte("XXXX"), 0)
	f.Close()
	if err := tool.Check(ctx, p, "qcow2"); err == nil {
		t.Error("check of a damaged image succeeded")
	}
}

func TestOverlayWithBackingFile(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	ctx := context.Background()
	var tool Tool
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	if err := tool.Create(ctx, base, "qcow2", 32<<20, "", "", nil); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	// Size 0 and no backing format: size inherited, format probed.
	if err := tool.Create(ctx, overlay, "qcow2", 0, base, "", nil); err != nil {
		t.Fatal(err)
	}
	info, err := tool.Info(ctx, overlay)
	if err != nil {
		t.Fatal(err)
	}
	if info.BackingFile != base || info.BackingFormat != "qcow2" || info.VirtualSize != 32<<20 {
		t.Errorf("overlay info %+v", info)
	}
	if err := tool.Compare(ctx, overlay, base); err != nil {
		t.Errorf("fresh overlay differs from its base: %v", err)
	}
}

func TestConvertProgressAndCompare(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	ctx := context.Background()
	tool, logs := logTool(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	writeRandomRaw(t, src, 64<<20, 16<<20)

	var pcts []float64
	dst := filepath.Join(dir, "out.qcow2")
	err := tool.Convert(ctx, ConvertOptions{Src: src, SrcFormat: "raw", Dst: dst, DstFormat: "qcow2",
		Progress: func(p float64) { pcts = append(pcts, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(pcts) < 3 || pcts[len(pcts)-1] != 100 {
		t.Errorf("progress %v: want several values ending at 100", pcts)
	}
	for i := 1; i < len(pcts); i++ {
		if pcts[i] <= pcts[i-1] {
			t.Errorf("progress not increasing: %v", pcts)
			break
		}
	}
	if info, _ := tool.Info(ctx, dst); info.Format != "qcow2" {
		t.Errorf("output format %q", info.Format)
	}
	if err := tool.Compare(ctx, src, dst); err != nil {
		t.Errorf("converted image differs: %v", err)
	}
	// Only the source and the output: no temporary left.
	if e := entries(t, dir); len(e) != 2 {
		t.Errorf("directory holds %v", e)
	}
	// The logged command wrote to a temp name, not to dst directly.
	var convLine string
	for _, l := range logs() {
		if strings.Contains(l, " convert ") {
			convLine = l
		}
	}
	if !strings.Contains(convLine, "convert -p -f raw -O qcow2 "+src+" "+filepath.Join(dir, ".out.qcow2.tmp-")) {
		t.Errorf("convert command %q", convLine)
	}

	// A compressed copy of compressible data (random data is stored
	// uncompressed by qemu-img): same content, compressed clusters.
	text := filepath.Join(dir, "text.raw")
	os.WriteFile(text, []byte(strings.Repeat("kiln builds images. ", 400000)), 0o644)
	os.Truncate(text, 16<<20)
	cdst := filepath.Join(dir, "text-c.qcow2")
	if err := tool.Convert(ctx, ConvertOptions{Src: text, Dst: cdst, DstFormat: "qcow2", Compress: true}); err != nil {
		t.Fatal(err)
	}
	if err := tool.Compare(ctx, text, cdst); err != nil {
		t.Errorf("compressed image differs: %v", err)
	}
	out, _ := exec.Command("qemu-img", "check", cdst).CombinedOutput()
	if !strings.Contains(string(out), "100.00% compressed clusters") {
		t.Errorf("-c produced no compressed clusters: %s", out)
	}

	// A changed byte makes Compare fail with ErrImagesDiffer and the offset.
	f, _ := os.OpenFile(src, os.O_RDWR, 0)
	f.WriteAt([]byte{'X'}, 40<<20)
	f.Close()
	err = tool.Compare(ctx, src, dst)
	if !errors.Is(err, ErrImagesDiffer) || !strings.Contains(err.Error(), "41943040") {
		t.Errorf("Compare of different images: %v, want ErrImagesDiffer at offset 41943040", err)
	}
}

func TestConvertMissingSource(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	var tool Tool
	dir := t.TempDir()
	src := filepath.Join(dir, "nope.raw")
	err := tool.Convert(context.Background(), ConvertOptions{Src: src, Dst: filepath.Join(dir, "out.qcow2"), DstFormat: "qcow2"})
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *CommandError", err)
	}
	msg := err.Error()
	for _, want := range []string{"qemu-img convert -p -O qcow2 " + src, "No such file or directory", "exit status 1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("failed convert left %v", e)
	}
	if err := tool.Compare(context.Background(), src, src); err == nil || errors.Is(err, ErrImagesDiffer) {
		t.Errorf("Compare of missing files: %v, want a plain error", err)
	}
}

func TestConvertCancelLeavesNoTemp(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	var tool Tool
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	// Random data compresses slowly (~10 MiB/s): plenty of time to cancel.
	writeRandomRaw(t, src, 64<<20, 64<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	err := tool.Convert(ctx, ConvertOptions{Src: src, Dst: filepath.Join(dir, "out.qcow2"), DstFormat: "qcow2", Compress: true,
		Progress: func(p float64) {
			if p > 0 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if e := entries(t, dir); len(e) != 1 {
		t.Errorf("cancelled convert left %v", e)
	}
	t.Logf("cancelled after %v", time.Since(start))
}

func TestConvertRetriesOnLock(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	real, _ := exec.LookPath("qemu-img")
	dir := t.TempDir()
	// A wrapper that fails the first convert with qemu-img's lock
	// message, as when a QEMU process has not yet released the image.
	script := filepath.Join(dir, "qemu-img-flaky")
	counter := filepath.Join(dir, "count")
	os.WriteFile(script, []byte(`#!/bin/sh
if [ ! -e '`+counter+`' ]; then
  : > '`+counter+`'
  echo 'qemu-img: Could not open '"'"'x'"'"': Failed to get shared "write" lock' >&2
  echo 'Is another process using the image [x]?' >&2
  exit 1
fi
exec '`+real+`' "$@"
`), 0o755)
	defer func(d time.Duration) { lockRetryDelay = d }(lockRetryDelay)
	lockRetryDelay = time.Millisecond

	src := filepath.Join(dir, "src.raw")
	writeRandomRaw(t, src, 1<<20, 4096)
	dst := filepath.Join(dir, "out.raw")
	tool, logs := logTool(t)
	tool.Binary = script
	if err := tool.Convert(context.Background(), ConvertOptions{Src: src, Dst: dst, DstFormat: "raw"}); err != nil {
		t.Fatal(err)
	}
	if err := tool.Compare(context.Background(), src, dst); err != nil {
		t.Error(err)
	}
	if !strings.Contains(strings.Join(logs(), "\n"), "locked by another process; retrying") {
		t.Errorf("no retry logged: %q", logs())
	}

	// Other failures are not retried.
	os.Remove(counter)
	tool.Binary = filepath.Join(dir, "qemu-img-fails")
	os.WriteFile(tool.Binary, []byte("#!/bin/sh\necho once >> '"+counter+"'\necho 'qemu-img: boom' >&2\nexit 1\n"), 0o755)
	err := tool.Convert(context.Background(), ConvertOptions{Src: src, Dst: dst + "2", DstFormat: "raw"})
	if err == nil || !strings.Contains(err.Error(), "qemu-img: boom") {
		t.Errorf("err = %v", err)
	}
	if b, _ := os.ReadFile(counter); strings.Count(string(b), "once") != 1 {
		t.Errorf("non-lock failure ran %d times, want 1", strings.Count(string(b), "once"))
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"qemu-img", "convert", "-o", "subformat=streamOptimized", "/a b/it's.raw", ""})
	want := `qemu-img convert -o subformat=streamOptimized '/a b/it'\''s.raw' ''`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseProgress(t *testing.T) {
	for in, want := range map[string]float64{"    (0.00/100%)": 0, "    (12.34/100%)": 12.34, "(100.00/100%)": 100} {
		if got, ok := parseProgress(in); !ok || got != want {
			t.Errorf("parseProgress(%q) = %v, %v", in, got, ok)
		}
	}
	if _, ok := parseProgress("Images are identical."); ok {
		t.Error("parsed a non-progress line")
	}
}
