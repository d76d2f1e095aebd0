package postprocess

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/disk"
	"github.com/kilnbuild/kiln/export"
	"github.com/kilnbuild/kiln/internal/fsx"
)

// pxe is kiln's PXE-ready output (not in Packer): a directory with the
// disk as raw (optionally gz- or zst-compressed, a single stream that
// `zstd -dc disk.raw.zst | dd of=/dev/sdX` writes to a block device), the
// installed system's kernel and initrd, a boot.ipxe script booting them,
// and SHA256SUMS over all of it.
//
// The kernel and initrd are read out of the raw image in Go with
// go-diskfs, which reads FAT12/16/32, ext4, ISO 9660 and SquashFS: no
// loop devices, mounts or root needed. Symbolic links (ext4, SquashFS)
// are followed inside the image.
type pxe struct {
	OutputDirectory string `hcl:"output_directory,optional"`
	Compression     string `hcl:"compression,optional"`
	KernelPath      string `hcl:"kernel_path,optional"`
	InitrdPath      string `hcl:"initrd_path,optional"`
	KernelArgs      string `hcl:"kernel_args,optional"`
	// Partition is the 1-based partition holding kernel_path; 0 searches
	// every partition, then the whole disk (a filesystem without a
	// partition table).
	Partition int `hcl:"partition,optional"`
	// BaseURL prefixes the file names in boot.ipxe; empty means relative
	// to the script's own URL (TFTP or HTTP from the same directory).
	BaseURL string `hcl:"base_url,optional"`
	Level   int    `hcl:"compression_level,optional"`
}

// pxeImageName and friends are the file names in the output directory.
const (
	pxeImageName  = "disk.raw"
	pxeKernelName = "vmlinuz"
	pxeInitrdName = "initrd.img"
	pxeScriptName = "boot.ipxe"
	pxeSumsName   = "SHA256SUMS"
)

var pxeCompressions = map[string]string{"": "", "none": "", "gz": "gzip", "zst": "zstd"}

func decodePXE(pp *config.PostProcessor) (processor, hcl.Diagnostics) {
	p := &pxe{}
	diags := decodeBody(pp, p)
	if diags.HasErrors() {
		return nil, diags
	}
	if p.OutputDirectory == "" {
		p.OutputDirectory = "pxe-{{.BuildName}}"
	}
	if p.KernelPath == "" {
		p.KernelPath = "/boot/vmlinuz"
	}
	if p.InitrdPath == "" {
		p.InitrdPath = "/boot/initrd.img"
	}
	if p.KernelArgs == "" {
		p.KernelArgs = "root=/dev/sda1 ro console=tty0 console=ttyS0,115200"
	}
	if p.Level <= 0 {
		p.Level = 6
	}
	if _, ok := pxeCompressions[p.Compression]; !ok {
		diags = append(diags, attrError(pp, "compression", fmt.Sprintf("Unsupported compression %q", p.Compression),
			`Use "gz" or "zst" (streamable to a block device), or "none".`))
	}
	if p.Partition < 0 {
		diags = append(diags, attrError(pp, "partition", "Invalid partition",
			"partition is 1-based; 0 (the default) searches every partition."))
	}
	if strings.ContainsAny(p.KernelArgs, "\n\r") {
		diags = append(diags, attrError(pp, "kernel_args", "Invalid kernel_args", "The kernel command line is one line."))
	}
	diags = append(diags, checkTemplate(pp, "output_directory", p.OutputDirectory, "BuildName", "BuilderType")...)
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

func (p *pxe) run(ctx context.Context, in Artifact, env Env) (Artifact, bool, error) {
	outRel, err := render(p.OutputDirectory, map[string]string{"BuildName": env.BuildName, "BuilderType": in.BuilderType}, env)
	if err != nil {
		return Artifact{}, false, fmt.Errorf("output_directory: %w", err)
	}
	if len(in.Files) == 0 {
		return Artifact{}, false, errors.New("the artifact has no disk image")
	}
	// The build's disk is its first file (disk_additional_size disks follow).
	src := env.path(in.Files[0])
	dst := env.path(outRel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Artifact{}, false, err
	}
	work, err := os.MkdirTemp(filepath.Dir(dst), ".kiln-pxe-")
	if err != nil {
		return Artifact{}, false, fmt.Errorf("creating a work directory for %s: %w", outRel, err)
	}
	defer os.RemoveAll(work)

	env.Say("Writing a PXE-ready raw image of %s into %s", in.Files[0], outRel)
	raw := filepath.Join(work, pxeImageName)
	report := env.Progress("Converting to raw")
	if err := export.Export(ctx, disk.Tool{}, src, "", raw, export.Format{Name: "raw"}, func(pct float64) { report(int64(pct*10), 1000) }); err != nil {
		return Artifact{}, false, err
	}
	if err := p.extractBoot(raw, work); err != nil {
		return Artifact{}, false, err
	}
	names := []string{pxeKernelName, pxeInitrdName, pxeScriptName}
	image := pxeImageName
	if algo := pxeCompressions[p.Compression]; algo != "" {
		image = pxeImageName + "." + p.Compression
		env.Say("Compressing %s (%s)", pxeImageName, p.Compression)
		if err := compressVerified(ctx, raw, filepath.Join(work, image), algo, p.Level, env.Progress("Compressing "+image)); err != nil {
			return Artifact{}, false, err
		}
		os.Remove(raw)
	}
	names = append([]string{image}, names...)
	if err := fsx.WriteFile(filepath.Join(work, pxeScriptName), []byte(p.script()), 0o644); err != nil {
		return Artifact{}, false, err
	}
	if err := writeSums(ctx, work, names); err != nil {
		return Artifact{}, false, err
	}
	names = append(names, pxeSumsName)
	if err := fsx.RenameDir(work, dst, env.Force); err != nil {
		return Artifact{}, false, fmt.Errorf("moving the PXE output into place: %w", err)
	}
	files := make([]string, len(names))
	for i, n := range names {
		files[i] = filepath.Join(outRel, n)
	}
	return Artifact{
		BuilderID:   "kiln.post-processor.pxe",
		BuildName:   in.BuildName,
		BuilderType: in.BuilderType,
		Files:       files,
		ID:          outRel,
		Data:        in.Data,
	}, false, nil // as compress: the input goes unless keep_input_artifact
}

// script is boot.ipxe. initrd= on the command line lets the kernel find
// the initrd when iPXE runs under UEFI; BIOS iPXE ignores it.
func (p *pxe) script() string {
	return fmt.Sprintf("#!ipxe\nkernel %s%s initrd=%s %s\ninitrd %s%s\nboot\n",
		p.BaseURL, pxeKernelName, pxeInitrdName, p.KernelArgs, p.BaseURL, pxeInitrdName)
}

// extractBoot copies kernel_path and initrd_path out of the raw image.
func (p *pxe) extractBoot(raw, dir string) error {
	d, err := diskfs.Open(raw, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return fmt.Errorf("opening %s: %w", raw, err)
	}
	defer d.Close()
	candidates := []int{p.Partition}
	if p.Partition == 0 {
		candidates = nil
		if table, err := d.GetPartitionTable(); err == nil {
			for i := range table.GetPartitions() {
				candidates = append(candidates, i+1)
			}
		}
		candidates = append(candidates, 0) // the whole disk
	}
	var tried []string
	for _, idx := range candidates {
		fs, err := d.GetFilesystem(idx)
		if err != nil {
			tried = append(tried, fmt.Sprintf("partition %d: %v", idx, err))
			continue
		}
		kernel, err := resolveLink(fs, p.KernelPath)
		if err == nil {
			var initrd string
			if initrd, err = resolveLink(fs, p.InitrdPath); err == nil {
				if err = copyOut(fs, kernel, filepath.Join(dir, pxeKernelName)); err == nil {
					err = copyOut(fs, initrd, filepath.Join(dir, pxeInitrdName))
				}
			}
		}
		if err == nil {
			return nil
		}
		tried = append(tried, fmt.Sprintf("partition %d: %v", idx, err))
	}
	return fmt.Errorf("finding kernel_path %s and initrd_path %s in the image (%s); set partition, kernel_path and initrd_path",
		p.KernelPath, p.InitrdPath, strings.Join(tried, "; "))
}

// resolveLink follows symbolic links (the usual /boot/vmlinuz ->
// vmlinuz-6.1.0-... of Debian) within the filesystem.
func resolveLink(fs filesystem.FileSystem, name string) (string, error) {
	type readlinker interface {
		Readlink(string) (string, error)
	}
	p := path.Clean("/" + name)
	for range 16 {
		rl, ok := fs.(readlinker)
		if !ok {
			break
		}
		target, err := rl.Readlink(p)
		if err != nil || target == "" {
			break // not a link (or not supported): use p as it is
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	if _, err := fs.Stat(strings.TrimPrefix(p, "/")); err != nil {
		// Some go-diskfs filesystems want the leading slash.
		if _, err2 := fs.Stat(p); err2 != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
	}
	return p, nil
}

func copyOut(fs filesystem.FileSystem, name, dst string) error {
	f, err := fs.OpenFile(name, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("opening %s in the image: %w", name, err)
	}
	defer f.Close()
	return fsx.WriteWith(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
}

// compressVerified compresses src into dst and then decompresses dst
// again, checking that the stream yields exactly src.
func compressVerified(ctx context.Context, src, dst, algo string, level int, report func(done, total int64)) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	h := sha256.New()
	err = fsx.WriteWith(dst, 0o644, func(w io.Writer) error {
		zw, err := newCompressor(w, algo, level)
		if err != nil {
			return err
		}
		if _, err := fsx.CopyContext(ctx, io.MultiWriter(zw, h), in, func(n int64) { report(n, fi.Size()) }); err != nil {
			zw.abort(err)
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return fmt.Errorf("compressing %s: %w", src, err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	f, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, done, err := newDecompressor(f, algo)
	if err != nil {
		return fmt.Errorf("verifying %s: %w", dst, err)
	}
	defer done()
	h2 := sha256.New()
	if _, err := fsx.CopyContext(ctx, h2, zr, nil); err != nil {
		return fmt.Errorf("verifying %s: %w", dst, err)
	}
	if got := hex.EncodeToString(h2.Sum(nil)); got != want {
		return fmt.Errorf("verifying %s: it decompresses to sha256 %s, want %s", dst, got, want)
	}
	return nil
}

// writeSums writes SHA256SUMS (sha256sum's format, so `sha256sum -c`
// checks it) and reads it back against the files.
func writeSums(ctx context.Context, dir string, names []string) error {
	sums := map[string]string{}
	var b strings.Builder
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		s, err := sha256File(ctx, filepath.Join(dir, n))
		if err != nil {
			return err
		}
		sums[n] = s
		fmt.Fprintf(&b, "%s  %s\n", s, n)
	}
	p := filepath.Join(dir, pxeSumsName)
	if err := fsx.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		return err
	}
	back, err := os.ReadFile(p)
	if err != nil || string(back) != b.String() {
		return fmt.Errorf("verifying %s: read back differs (%v)", p, err)
	}
	return nil
}

func sha256File(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := fsx.CopyContext(ctx, h, f, nil); err != nil {
		return "", fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
