package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/disk"
	"github.com/kilnbuild/kiln/export"
	"github.com/kilnbuild/kiln/export/ami"
	"github.com/kilnbuild/kiln/postprocess"
)

// The export section measures kiln's output side on one input: the test
// guest's disk grown with random data (incompressible, as a real root
// filesystem's binaries nearly are) and written zeros (which every
// converter must drop), as the qcow2 working disk a build leaves.
//
//   - conversion: each export format through export.Export against a
//     plain `qemu-img convert` of the same input, run back to back. kiln's
//     time includes its verification (qemu-img compare of the result with
//     the input), so a ratio near 0.5 means kiln's own overhead is ~0.
//   - compression: the compress post-processor (which also re-reads and
//     checks what it wrote) for gz, zst, xz and lz4.
//   - upload: export/ami's multipart uploader to an in-process S3 server.
const (
	exportRandom = 128 << 20
	exportZeros  = 128 << 20
	// The compression input is smaller: xz is slow on random data.
	compressRandom = 16 << 20
	compressZeros  = 16 << 20
	// exportRounds: each conversion runs this often, alternating which
	// of kiln and qemu-img goes first (the second pays for the first's
	// writeback); the fastest time of each counts.
	exportRounds = 2
)

type rate struct {
	name        string
	kiln, plain time.Duration // plain: qemu-img convert; 0 if none
	bytes       int64
}

func mibps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

// runExports runs the section and prints its table to stdout.
func (b *bench) runExports(ctx context.Context, stdout, stderr io.Writer) error {
	dir := filepath.Join(b.tmp, "export")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	guestRaw := filepath.Join(filepath.Dir(b.key), "guest.raw")
	if _, err := os.Stat(guestRaw); err != nil {
		guestRaw = filepath.Join(b.guestDir, "guest.raw")
	}
	src, err := os.Open(guestRaw)
	if err != nil {
		return fmt.Errorf("opening the guest's raw disk: %w", err)
	}
	defer src.Close()

	fmt.Fprintln(stderr, "bench: preparing the export input")
	rawIn := filepath.Join(dir, "input.raw")
	if err := grow(src, rawIn, exportRandom, exportZeros); err != nil {
		return err
	}
	in := filepath.Join(dir, "input.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", rawIn, in).CombinedOutput(); err != nil {
		return fmt.Errorf("making the qcow2 input: %v\n%s", err, out)
	}
	os.Remove(rawIn)
	fi, err := os.Stat(in)
	if err != nil {
		return err
	}
	virt := int64(64<<20) + exportRandom + exportZeros

	var convs []rate
	for _, spec := range []string{"raw", "qcow2", "qcow2,compression=zstd", "vmdk", "vmdk,subformat=monolithicSparse",
		"vhd", "vhd,subformat=fixed", "vhdx", "ova"} {
		f, err := export.ParseFormat(spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: export %s\n", spec)
		plainArgs := map[string][]string{
			"raw": {"-O", "raw"}, "qcow2": {"-O", "qcow2"}, "qcow2,compression=zstd": {"-O", "qcow2", "-c", "-o", "compression_type=zstd"},
			"vmdk": {"-O", "vmdk", "-o", "subformat=streamOptimized"}, "vmdk,subformat=monolithicSparse": {"-O", "vmdk", "-o", "subformat=monolithicSparse"},
			"vhd": {"-O", "vpc", "-o", "subformat=dynamic"}, "vhd,subformat=fixed": {"-O", "vpc", "-o", "subformat=fixed"},
			"vhdx": {"-O", "vhdx"}, "ova": {"-O", "vmdk", "-o", "subformat=streamOptimized,adapter_type=lsilogic,hwversion=14"},
		}[spec]
		plainOut, kilnOut := filepath.Join(dir, "plain.out"), filepath.Join(dir, "kiln.out")
		args := append(append([]string{"convert", "-f", "qcow2"}, plainArgs...), in, plainOut)
		runPlain := func() (time.Duration, error) {
			defer os.Remove(plainOut)
			start := time.Now()
			if out, err := exec.CommandContext(ctx, "qemu-img", args...).CombinedOutput(); err != nil {
				return 0, fmt.Errorf("qemu-img convert %s: %v\n%s", spec, err, out)
			}
			return time.Since(start), nil
		}
		runKiln := func() (time.Duration, error) {
			defer os.Remove(kilnOut)
			start := time.Now()
			err := export.Export(ctx, disk.Tool{}, in, "qcow2", kilnOut, f, nil)
			return time.Since(start), err
		}
		var plain, kiln time.Duration
		for round := range exportRounds {
			order := []func() (time.Duration, error){runPlain, runKiln}
			best := []*time.Duration{&plain, &kiln}
			if round%2 == 1 {
				order[0], order[1], best[0], best[1] = order[1], order[0], best[1], best[0]
			}
			for i, run := range order {
				d, err := run()
				if err != nil {
					return err
				}
				if *best[i] == 0 || d < *best[i] {
					*best[i] = d
				}
			}
		}
		convs = append(convs, rate{name: spec, kiln: kiln, plain: plain, bytes: virt})
	}

	// Compression, of a raw disk (what the compress post-processor gets
	// after a raw build).
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	craw := filepath.Join(dir, "disk.raw")
	if err := grow(src, craw, compressRandom, compressZeros); err != nil {
		return err
	}
	cfi, err := os.Stat(craw)
	if err != nil {
		return err
	}
	var comps []rate
	for _, ext := range []string{"gz", "zst", "xz", "lz4"} {
		fmt.Fprintf(stderr, "bench: compress %s\n", ext)
		out := filepath.Join(dir, "disk.raw."+ext)
		pp, err := postProcessor("compress", fmt.Sprintf("output = %q\nkeep_input_artifact = true\n", out))
		if err != nil {
			return err
		}
		pp.KeepInputArtifact = true
		start := time.Now()
		_, err = postprocess.Run(ctx, [][]*config.PostProcessor{{pp}},
			postprocess.Artifact{BuilderID: postprocess.BuilderID, BuildName: "bench", BuilderType: "qemu", Files: []string{craw}},
			postprocess.Env{Dir: dir, BuildName: "bench"})
		if err != nil {
			return fmt.Errorf("compress %s: %w", ext, err)
		}
		ofi, _ := os.Stat(out)
		comps = append(comps, rate{name: fmt.Sprintf("%s (%.0f%% of input)", ext, 100*float64(ofi.Size())/float64(cfi.Size())), kiln: time.Since(start), bytes: cfi.Size()})
		os.Remove(out)
	}

	up, err := b.upload(ctx, in)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\nexport: input %d MiB virtual (64 MiB guest + %d MiB random + %d MiB zeros), qcow2 of %d MiB\n",
		virt>>20, exportRandom>>20, exportZeros>>20, fi.Size()>>20)
	fmt.Fprintf(stdout, "%-34s %12s %14s %8s\n", "conversion", "kiln MiB/s", "qemu-img MiB/s", "ratio")
	for _, r := range convs {
		fmt.Fprintf(stdout, "%-34s %12.0f %14.0f %8.2f\n", r.name, mibps(r.bytes, r.kiln), mibps(r.bytes, r.plain), r.plain.Seconds()/r.kiln.Seconds())
	}
	fmt.Fprintln(stdout, "(kiln's time includes verifying the output with qemu-img compare)")
	fmt.Fprintf(stdout, "\n%-34s %12s   (input %d MiB raw)\n", "compression", "MiB/s", cfi.Size()>>20)
	for _, r := range comps {
		fmt.Fprintf(stdout, "%-34s %12.0f\n", r.name, mibps(r.bytes, r.kiln))
	}
	fmt.Fprintf(stdout, "\n%-34s %12.0f   (%d MiB to in-process gofakes3)\n", "S3 multipart upload MiB/s", mibps(up.bytes, up.kiln), up.bytes>>20)
	return nil
}

// grow writes src followed by nRandom random bytes and nZeros written
// (not sparse) zero bytes to dst.
func grow(src io.Reader, dst string, nRandom, nZeros int64) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, src); err != nil {
		return fmt.Errorf("copying the guest disk: %w", err)
	}
	if _, err := io.CopyN(f, rand.Reader, nRandom); err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for n := int64(0); n < nZeros; n += int64(len(zero)) {
		if _, err := f.Write(zero); err != nil {
			return err
		}
	}
	return f.Close()
}

// postProcessor makes a post-processor block from HCL attributes.
func postProcessor(typ, body string) (*config.PostProcessor, error) {
	f, diags := hclparse.NewParser().ParseHCL([]byte(body), typ+".hcl")
	if diags.HasErrors() {
		return nil, diags
	}
	// keep_input_artifact is a meta-argument: strip it from the body.
	_, rest, diags := f.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "keep_input_artifact"}}})
	if diags.HasErrors() {
		return nil, diags
	}
	return &config.PostProcessor{Type: typ, Body: rest, EvalContext: &hcl.EvalContext{}}, nil
}

// upload times export/ami's uploader sending path to an in-process S3
// server (gofakes3 with its in-memory backend).
func (b *bench) upload(ctx context.Context, path string) (rate, error) {
	backend := s3mem.New()
	if err := backend.CreateBucket("bench"); err != nil {
		return rate{}, err
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return rate{}, err
	}
	c := ami.Config{
		AccessKey: "AKIABENCH", SecretKey: "bench-secret", Region: "us-east-1",
		S3BucketName: "bench", S3KeyName: "bench.raw", Format: "raw",
		S3Endpoint: srv.URL, S3ForcePathStyle: true,
	}
	fmt.Fprintln(os.Stderr, "bench: S3 upload")
	start := time.Now()
	if _, err := ami.Upload(ctx, c, path, ami.UI{}); err != nil {
		return rate{}, err
	}
	return rate{name: "upload", kiln: time.Since(start), bytes: fi.Size()}, nil
}

// exportSection runs runExports and turns its error into an exit code.
func (b *bench) exportSection(ctx context.Context, stdout, stderr io.Writer) int {
	if err := b.runExports(ctx, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted")
			return 130
		}
		fmt.Fprintf(stderr, "bench: export section: %v\n", err)
		return 1
	}
	return 0
}
