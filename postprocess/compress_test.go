package postprocess

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

func TestDetectPacking(t *testing.T) {
	cases := map[string]string{
		"out/image.gz":           "gzip",
		"image.qcow2.gz":         "gzip",
		"image.tar.gz":           "tar+gzip",
		"image.tgz":              "tar+gzip",
		"image.tar.zst":          "tar+zstd",
		"image.zst":              "zstd",
		"image.tar.xz":           "tar+xz",
		"image.lz4":              "lz4",
		"image.tar":              "tar",
		"image.zip":              "zip",
		"packer_debian_qemu":     "tar+gzip", // no extension: Packer's default
		"image.box":              "tar+gzip", // unknown extension: same
		"v1.2/image.IMG.XZ":      "xz",       // directories and case do not matter
		"image.qcow2" + "|zst":   "zstd",     // format overrides
		"image.tar.bgzf":         "error",
		"image.bz2":              "error",
		"image.tar.gz" + "|zip":  "zip",
		"image.raw" + "|tar.lz4": "tar+lz4",
	}
	for in, want := range cases {
		out, format, _ := strings.Cut(in, "|")
		p, err := detectPacking(out, format)
		got := p.String()
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("detectPacking(%q, %q) = %s (%v), want %s", out, format, got, err, want)
		}
	}
}

// decompressors independent of the writers where possible: the standard
// library for gzip, the system tools when installed.
func decompress(t *testing.T, algo string, data []byte) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch algo {
	case "":
		return data
	case "gzip":
		zr, e := gzip.NewReader(bytes.NewReader(data))
		if e != nil {
			t.Fatal(e)
		}
		zr.Multistream(false) // pgzip-style output is one member
		r = zr
	case "zstd":
		zr, e := zstd.NewReader(bytes.NewReader(data))
		if e != nil {
			t.Fatal(e)
		}
		defer zr.Close()
		r = zr
	case "xz":
		r, err = xz.NewReader(bytes.NewReader(data))
	case "lz4":
		r = lz4.NewReader(bytes.NewReader(data))
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", algo, err)
	}
	return out
}

// systemCheck decompresses with the system tool, if there is one.
func systemCheck(t *testing.T, algo, path string, want []byte) {
	t.Helper()
	tool := map[string]string{"gzip": "gzip", "zstd": "zstd", "xz": "xz", "lz4": "lz4"}[algo]
	if tool == "" {
		return
	}
	if _, err := exec.LookPath(tool); err != nil {
		return
	}
	out, err := exec.Command(tool, "-dc", path).Output()
	if err != nil {
		t.Errorf("%s -dc %s: %v", tool, path, err)
		return
	}
	if !bytes.Equal(out, want) {
		t.Errorf("%s -dc %s: %d bytes, not the original %d", tool, path, len(out), len(want))
	}
}

func TestCompressRoundTrip(t *testing.T) {
	// xz in pure Go compresses at about 3 MiB/s per core: give it less
	// data and smaller streams, so that several streams are still made.
	defer func(n int) { xzBlockSize = n }(xzBlockSize)
	xzBlockSize = 256 << 10
	big := testData(5<<20+12345, 1) // not a multiple of any block size
	small := big[:1<<20+777]
	vars := testData(300<<10, 2)
	for _, ext := range []string{".gz", ".zst", ".xz", ".lz4", ".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.lz4", ".zip"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			pk, _ := detectPacking("x"+ext, "")
			disk := big
			if pk.algo == "xz" {
				disk = small
			}
			files := map[string][]byte{"disk.raw": disk}
			if pk.archive != "" {
				files["efivars.fd"] = vars
			}
			in := buildArtifact(t, dir, files)
			env, _ := testEnv(dir)
			var mu sync.Mutex
			var last, total int64
			env.Progress = func(string) func(int64, int64) {
				return func(d, tot int64) { mu.Lock(); last, total = d, tot; mu.Unlock() }
			}
			chains := parseChains(t, dir, `
post-processor "compress" {
  output = "dist/{{.BuildName}}`+ext+`"
  keep_input_artifact = true
}`)
			arts, err := Run(context.Background(), chains, in, env)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join("dist", "debian"+ext)
			if len(arts) != 2 || arts[1].Files[0] != out || arts[1].BuilderID != "packer.post-processor.compress" {
				t.Fatalf("artifacts = %+v", arts)
			}
			var size int64
			for _, b := range files {
				size += int64(len(b))
			}
			if last != size || total != size {
				t.Errorf("progress ended at %d/%d, want %d/%d", last, total, size, size)
			}
			path := filepath.Join(dir, out)
			data := readFile(t, path)
			if pk.algo != "" && len(data) >= len(disk)*9/10 {
				t.Errorf("%d bytes from %d: not compressed", len(data), size)
			}
			got := map[string][]byte{}
			switch pk.archive {
			case "":
				got["disk.raw"] = decompress(t, pk.algo, data)
				systemCheck(t, pk.algo, path, disk)
			case "tar":
				tr := tar.NewReader(bytes.NewReader(decompress(t, pk.algo, data)))
				for {
					h, err := tr.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got[h.Name], _ = io.ReadAll(tr)
				}
				// GNU tar reads every compression used here except lz4.
				if _, err := exec.LookPath("tar"); err == nil && pk.algo != "lz4" {
					if out, err := exec.Command("tar", "-tf", path).CombinedOutput(); err != nil {
						t.Errorf("tar -tf: %v\n%s", err, out)
					}
				}
			case "zip":
				zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range zr.File {
					rc, err := f.Open()
					if err != nil {
						t.Fatal(err)
					}
					b, err := io.ReadAll(rc)
					if err != nil {
						t.Fatal(err)
					}
					// Packer stores zip members by their (relative) path.
					got[strings.TrimPrefix(f.Name, "output-debian/")] = b
				}
			}
			if len(got) != len(files) {
				t.Errorf("archive holds %d files, want %d", len(got), len(files))
			}
			for name, want := range files {
				if !bytes.Equal(got[name], want) {
					t.Errorf("%s: round trip gave %d bytes, not the original %d", name, len(got[name]), len(want))
				}
			}
			if names := dirNames(t, filepath.Join(dir, "dist")); len(names) != 1 {
				t.Errorf("dist = %v, want only the output", names)
			}
		})
	}
}

func TestGzipWriterEdgeSizes(t *testing.T) {
	for _, n := range []int{0, 1, 1 << 20, 3<<20 + 1} {
		var b bytes.Buffer
		w := newGzipWriter(&b, 6)
		data := testData(n, 3)
		// Small writes across block boundaries.
		for p := data; len(p) > 0; {
			k := min(len(p), 70001)
			if _, err := w.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := decompress(t, "gzip", b.Bytes()); !bytes.Equal(got, data) {
			t.Errorf("%d bytes: round trip differs", n)
		}
	}
}

func TestCompressCancelLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.raw": testData(8<<20, 4)})
	env, _ := testEnv(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env.Progress = func(string) func(int64, int64) {
		return func(done, _ int64) {
			if done > 0 {
				cancel()
			}
		}
	}
	chains := parseChains(t, dir, `post-processor "compress" { output = "dist/x.xz" }`)
	arts, err := Run(ctx, chains, in, env)
	if err == nil {
		t.Fatal("Run succeeded despite cancellation")
	}
	if names := dirNames(t, filepath.Join(dir, "dist")); len(names) != 0 {
		t.Errorf("dist = %v after cancellation, want empty", names)
	}
	// A failed chain keeps the build's artifact (Packer would delete it).
	if len(arts) != 1 || !exists(filepath.Join(dir, in.Files[0])) {
		t.Errorf("artifacts = %+v; the build's image must survive a failed compress", arts)
	}
}

func TestCompressErrors(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.raw": []byte("a"), "efivars.fd": []byte("b")})
	env, _ := testEnv(dir)
	_, err := Run(context.Background(), parseChains(t, dir, `post-processor "compress" { output = "x.gz" }`), in, env)
	if err == nil || !strings.Contains(err.Error(), "single file, but the artifact has 2") {
		t.Errorf("two files into .gz: err = %v", err)
	}
	for _, f := range in.Files {
		if !exists(filepath.Join(dir, f)) {
			t.Errorf("%s was deleted after a failed compress", f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.gz")); err == nil {
		t.Error("x.gz exists after a failed compress")
	}
}
