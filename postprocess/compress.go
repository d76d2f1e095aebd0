package postprocess

import (
	"archive/tar"
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/klauspost/compress/flate"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/internal/fsx"
)

// compress is Packer's compress post-processor. The archive and
// compression are chosen from the output's extensions (.tar, .zip, .gz,
// .tgz, .zst, .xz, .lz4 and .tar.* combinations), or from format.
type compress struct {
	Output string `hcl:"output,optional"`
	Format string `hcl:"format,optional"`
	Level  int    `hcl:"compression_level,optional"`
}

// packing is what an output name asks for.
type packing struct {
	archive string // "", "tar" or "zip"
	algo    string // "", "gzip", "zstd", "xz" or "lz4"
}

var extRE = regexp.MustCompile(`\.([a-z0-9]+)`)

// unsupportedExt are extensions Packer knows that kiln does not write.
var unsupportedExt = map[string]string{
	"bgzf":  "bgzf is not supported; use .gz (also parallel) or .zst",
	"bz2":   "bzip2 is not supported; use .xz or .zst",
	"bzip2": "bzip2 is not supported; use .xz or .zst",
}

// detectPacking follows Packer's rules on the output's base name (plus
// "."+format if set): the last extension picks the archive or the
// compression, a ".tar" before it adds a tar archive, and a name without
// a known extension gets tar+gzip without being renamed.
func detectPacking(output, format string) (packing, error) {
	name := strings.ToLower(filepath.Base(output))
	if format != "" {
		name += "." + strings.ToLower(format)
	}
	m := extRE.FindAllStringSubmatch(name, -1)
	if len(m) == 0 {
		return packing{"tar", "gzip"}, nil
	}
	last, prev := m[len(m)-1][1], ""
	if len(m) > 1 {
		prev = m[len(m)-2][1]
	}
	var p packing
	if prev == "tar" {
		p.archive = "tar"
	}
	switch last {
	case "tar", "zip":
		return packing{archive: last}, nil
	case "gz":
		p.algo = "gzip"
	case "tgz":
		p = packing{"tar", "gzip"}
	case "zst", "zstd":
		p.algo = "zstd"
	case "xz":
		p.algo = "xz"
	case "lz4":
		p.algo = "lz4"
	default:
		if why, ok := unsupportedExt[last]; ok {
			return packing{}, fmt.Errorf("%s: %s", output, why)
		}
		return packing{"tar", "gzip"}, nil
	}
	return p, nil
}

func (p packing) String() string {
	switch {
	case p.archive == "":
		return p.algo
	case p.algo == "":
		return p.archive
	}
	return p.archive + "+" + p.algo
}

func decodeCompress(pp *config.PostProcessor) (processor, hcl.Diagnostics) {
	c := &compress{}
	diags := decodeBody(pp, c)
	if diags.HasErrors() {
		return nil, diags
	}
	if c.Output == "" {
		c.Output = "packer_{{.BuildName}}_{{.BuilderType}}"
	}
	// Packer's normalisation: 0 and -1 mean the default 6, above 9 is 9.
	switch {
	case c.Level < -1:
		diags = append(diags, attrError(pp, "compression_level", "Invalid compression_level",
			fmt.Sprintf("%d is not a compression level: use 1 (fastest) to 9 (smallest).", c.Level)))
	case c.Level <= 0:
		c.Level = 6
	case c.Level > 9:
		c.Level = 9
	}
	diags = append(diags, checkTemplate(pp, "output", c.Output, "BuildName", "BuilderType")...)
	if !diags.HasErrors() {
		sample, _ := render(c.Output, map[string]string{"BuildName": "x", "BuilderType": "x"}, Env{})
		if _, err := detectPacking(sample, c.Format); err != nil {
			attr := "output"
			if c.Format != "" {
				attr = "format"
			}
			diags = append(diags, attrError(pp, attr, "Unsupported compress format", err.Error()))
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return c, diags
}

func (c *compress) run(ctx context.Context, in Artifact, env Env) (Artifact, bool, error) {
	out, err := render(c.Output, map[string]string{"BuildName": env.BuildName, "BuilderType": in.BuilderType}, env)
	if err != nil {
		return Artifact{}, false, fmt.Errorf("output: %w", err)
	}
	pk, err := detectPacking(out, c.Format)
	if err != nil {
		return Artifact{}, false, err
	}
	if pk.archive == "" && len(in.Files) != 1 {
		return Artifact{}, false, fmt.Errorf("%s compresses a single file, but the artifact has %d (%s); use a .tar.* or .zip output",
			out, len(in.Files), strings.Join(in.Files, ", "))
	}
	dst := env.path(out)
	members := make([]member, len(in.Files))
	seen := map[string]bool{}
	var total int64
	for i, f := range in.Files {
		p := env.path(f)
		if filepath.Clean(p) == filepath.Clean(dst) {
			return Artifact{}, false, fmt.Errorf("output %s is one of the files to compress", out)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return Artifact{}, false, err
		}
		name := filepath.Base(f)
		if pk.archive == "zip" && filepath.IsLocal(f) {
			name = filepath.ToSlash(f) // Packer stores zip members by their path
		}
		if seen[name] {
			return Artifact{}, false, fmt.Errorf("two artifact files would be stored as %s", name)
		}
		seen[name] = true
		members[i] = member{name: name, path: p, info: fi}
		total += fi.Size()
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Artifact{}, false, err
	}
	env.Say("Compressing %s into %s (%s, level %d, %d threads)", strings.Join(in.Files, ", "), out, pk, c.Level, runtime.GOMAXPROCS(0))
	report := env.Progress("Compressing " + filepath.Base(out))
	if err := writeArchive(ctx, dst, pk, c.Level, members, func(done int64) { report(done, total) }); err != nil {
		return Artifact{}, false, err
	}
	return Artifact{
		BuilderID:   "packer.post-processor.compress",
		BuildName:   in.BuildName,
		BuilderType: in.BuilderType,
		Files:       []string{out},
		Data:        in.Data,
	}, false, nil
}

// member is one input file and, once written, its SHA-256.
type member struct {
	name string
	path string
	info os.FileInfo
	sum  string
}

// writeArchive writes members to dst atomically: the temporary file is
// decompressed and checked against the inputs' SHA-256 before it is
// renamed into place.
func writeArchive(ctx context.Context, dst string, pk packing, level int, members []member, progress func(int64)) (err error) {
	af, err := fsx.Create(dst)
	if err != nil {
		return err
	}
	defer af.Abort()

	w, err := newCompressor(af, pk.algo, level)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.abort(err)
		}
		w.Close() // idempotent; ends the worker goroutines
	}()
	var done int64
	add := func(dst io.Writer, m *member) error {
		f, err := os.Open(m.path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := fsx.CopyContext(ctx, io.MultiWriter(dst, h), f, func(n int64) { progress(done + n) })
		if err != nil {
			return fmt.Errorf("compressing %s: %w", m.path, err)
		}
		if n != m.info.Size() {
			return fmt.Errorf("%s changed size while being compressed", m.path)
		}
		done += n
		m.sum = hex.EncodeToString(h.Sum(nil))
		return nil
	}
	switch pk.archive {
	case "":
		err = add(w, &members[0])
	case "tar":
		tw := tar.NewWriter(w)
		for i := range members {
			m := &members[i]
			h, herr := tar.FileInfoHeader(m.info, "")
			if herr != nil {
				return herr
			}
			h.Name = m.name
			if err = tw.WriteHeader(h); err != nil {
				break
			}
			if err = add(tw, m); err != nil {
				break
			}
		}
		if err == nil {
			err = tw.Close()
		}
	case "zip":
		zw := zip.NewWriter(w)
		zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(out, level)
		})
		for i := range members {
			m := &members[i]
			h, herr := zip.FileInfoHeader(m.info)
			if herr != nil {
				return herr
			}
			h.Name, h.Method = m.name, zip.Deflate
			fw, cerr := zw.CreateHeader(h)
			if cerr != nil {
				return cerr
			}
			if err = add(fw, m); err != nil {
				break
			}
		}
		if err == nil {
			err = zw.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := verifyArchive(ctx, af.Name(), pk, members); err != nil {
		return fmt.Errorf("verifying %s: %w", dst, err)
	}
	return af.Commit()
}

// nopCloser adapts the file for the uncompressed case; Close must not
// close the atomic file.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// onceCloser makes Close idempotent, so it can be deferred and called,
// and passes abort on to the parallel writers.
type onceCloser struct {
	io.WriteCloser
	closed bool
	err    error
}

func (o *onceCloser) abort(err error) {
	if a, ok := o.WriteCloser.(interface{ abort(error) }); ok {
		a.abort(err)
	}
}

func (o *onceCloser) Close() error {
	if !o.closed {
		o.closed = true
		o.err = o.WriteCloser.Close()
	}
	return o.err
}

// newCompressor returns the compressing writer for algo. Every one uses
// all cores: gzip and xz through chunkWriter, zstd and lz4 natively.
func newCompressor(w io.Writer, algo string, level int) (*onceCloser, error) {
	var wc io.WriteCloser
	switch algo {
	case "":
		wc = nopCloser{w}
	case "gzip":
		wc = newGzipWriter(w, level)
	case "zstd":
		// 6, the default level, maps to zstd's default (its level 3).
		l := zstd.SpeedDefault
		switch {
		case level <= 2:
			l = zstd.SpeedFastest
		case level >= 9:
			l = zstd.SpeedBestCompression
		case level >= 7:
			l = zstd.SpeedBetterCompression
		}
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return nil, err
		}
		wc = zw
	case "xz":
		wc = newXZWriter(w)
	case "lz4":
		lw := lz4.NewWriter(w)
		// lz4's high-compression levels are an order of magnitude
		// slower; only ask for them above the default level.
		lvl := lz4.Fast
		if level > 6 {
			lvl = lz4.CompressionLevel(1 << (8 + level))
		}
		if err := lw.Apply(lz4.ConcurrencyOption(-1), lz4.CompressionLevelOption(lvl)); err != nil {
			return nil, err
		}
		wc = lw
	default:
		return nil, fmt.Errorf("unknown compression %q", algo)
	}
	return &onceCloser{WriteCloser: wc}, nil
}

func newDecompressor(r io.Reader, algo string) (io.Reader, func(), error) {
	switch algo {
	case "":
		return r, func() {}, nil
	case "gzip":
		zr, err := kgzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case "xz":
		xr, err := xz.NewReader(r)
		return xr, func() {}, err
	case "lz4":
		return lz4.NewReader(r), func() {}, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %q", algo)
}

// verifyArchive decompresses path and checks that it holds exactly the
// members, with their SHA-256.
func verifyArchive(ctx context.Context, path string, pk packing, members []member) error {
	want := map[string]string{}
	for _, m := range members {
		want[m.name] = m.sum
	}
	got := map[string]string{}
	hashOf := func(r io.Reader) (string, error) {
		h := sha256.New()
		if _, err := fsx.CopyContext(ctx, h, r, nil); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	if pk.archive == "zip" {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return err
		}
		defer zr.Close()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				return err
			}
			got[f.Name], err = hashOf(rc) // zip also checks each CRC-32
			rc.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r, done, err := newDecompressor(f, pk.algo)
		if err != nil {
			return err
		}
		defer done()
		if pk.archive == "" {
			if got[members[0].name], err = hashOf(r); err != nil {
				return err
			}
		} else {
			tr := tar.NewReader(r)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if got[h.Name], err = hashOf(tr); err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
			}
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("archive holds %d files, expected %d", len(got), len(want))
	}
	for n, sum := range want {
		if got[n] != sum {
			return fmt.Errorf("%s does not decompress to the original (SHA-256 %s, expected %s)", n, got[n], sum)
		}
	}
	return nil
}
