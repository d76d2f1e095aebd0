package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kilnbuild/kiln/disk"
	"github.com/kilnbuild/kiln/download"
	"github.com/kilnbuild/kiln/export"
	"github.com/kilnbuild/kiln/internal/fsx"
)

func (st *State) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(st.Opts.Dir, p)
}

func (st *State) qemuImg() disk.Tool {
	return disk.Tool{Log: func(format string, args ...any) { st.Opts.Log.Info(fmt.Sprintf(format, args...)) }}
}

// stepOutputCheck refuses to overwrite an output directory without -force.
// With -force the old directory stays until the new one is complete.
func stepOutputCheck(ctx context.Context, st *State) (Undo, error) {
	st.OutputDir = st.abs(st.Cfg.OutputDirectory)
	if _, err := os.Stat(st.OutputDir); err == nil && !st.Opts.Force {
		return nil, fmt.Errorf("output directory %s already exists: remove it or run with -force to replace it", st.OutputDir)
	}
	return nil, nil
}

// stepWorkdir makes the hidden work directory beside the output directory
// (same filesystem, so the final rename is atomic) and a short runtime
// directory for sockets (unix socket paths are limited to 108 bytes).
func stepWorkdir(ctx context.Context, st *State) (Undo, error) {
	parent := filepath.Dir(st.OutputDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("creating parent of output directory: %w", err)
	}
	work, err := os.MkdirTemp(parent, ".kiln-"+filepath.Base(st.OutputDir)+"-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	st.WorkDir = work
	st.OutDir = filepath.Join(work, "out")
	run, err := os.MkdirTemp("", "kiln-run-")
	if err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("creating runtime directory: %w", err)
	}
	st.RunDir = run
	undo := func(ctx context.Context) error {
		err := os.RemoveAll(run)
		if st.keepWorkDir {
			return err
		}
		if werr := os.RemoveAll(work); werr != nil && err == nil {
			err = werr
		}
		return err
	}
	if err := os.Mkdir(st.OutDir, 0o755); err != nil {
		return undo, fmt.Errorf("creating %s: %w", st.OutDir, err)
	}
	return undo, nil
}

// stepFetch downloads (or, for local files, verifies) the ISO or disk image.
func stepFetch(ctx context.Context, st *State) (Undo, error) {
	urls := st.Cfg.ISOURLs
	if st.Cfg.ISOURL != "" {
		urls = []string{st.Cfg.ISOURL}
	}
	st.Opts.UI.Say("Retrieving %s", strings.Join(urls, ", "))
	p, err := download.Fetch(ctx, download.Request{
		URLs:       urls,
		Checksum:   st.Cfg.ISOChecksum,
		Dir:        st.Opts.Dir,
		CacheDir:   st.Opts.CacheDir,
		TargetPath: st.abs(st.Cfg.ISOTargetPath),
		Extension:  st.Cfg.ISOTargetExt,
		Progress:   st.Opts.UI.Progress("download"),
		Log:        st.logf,
	})
	if err != nil {
		return nil, err
	}
	st.Source = p
	st.Opts.UI.Message("using %s", p)
	return nil, nil
}

// stepDisk creates the disks QEMU boots: a blank main disk for ISO
// installs, or a copy (or overlay) of the source disk image.
func stepDisk(ctx context.Context, st *State) (Undo, error) {
	c, img := st.Cfg, st.qemuImg()
	main := filepath.Join(st.WorkDir, c.VMName)
	switch {
	case !c.DiskImage:
		st.Opts.UI.Say("Creating %s disk (%s)", c.WorkFormat, sizeString(c.DiskSizeBytes))
		if err := img.Create(ctx, main, c.WorkFormat, c.DiskSizeBytes, "", "", nil); err != nil {
			return nil, err
		}
	default:
		info, err := img.Info(ctx, st.Source)
		if err != nil {
			return nil, fmt.Errorf("reading source disk image: %w", err)
		}
		switch {
		case c.UseBackingFile:
			st.Opts.UI.Say("Creating qcow2 overlay on %s", st.Source)
			if err := img.Create(ctx, main, "qcow2", 0, st.Source, info.Format, nil); err != nil {
				return nil, err
			}
		case info.Format == c.WorkFormat:
			st.Opts.UI.Say("Copying source disk image")
			if err := fsx.CopyFile(ctx, main, st.Source); err != nil {
				return nil, fmt.Errorf("copying source disk image: %w", err)
			}
		default:
			st.Opts.UI.Say("Converting source disk image from %s to %s", info.Format, c.WorkFormat)
			err := img.Convert(ctx, disk.ConvertOptions{Src: st.Source, SrcFormat: info.Format, Dst: main, DstFormat: c.WorkFormat, Progress: st.Opts.UI.Percent("convert")})
			if err != nil {
				return nil, err
			}
		}
		if !c.SkipResizeDisk && c.DiskSizeBytes > info.VirtualSize {
			st.Opts.UI.Message("resizing disk to %s", sizeString(c.DiskSizeBytes))
			if err := img.Resize(ctx, main, c.WorkFormat, c.DiskSizeBytes); err != nil {
				return nil, err
			}
		}
	}
	st.Disks = []string{main}
	for i, size := range c.AdditionalSizesBytes {
		p := fmt.Sprintf("%s-%d", main, i+1)
		if err := img.Create(ctx, p, c.WorkFormat, size, "", "", nil); err != nil {
			return nil, err
		}
		st.Disks = append(st.Disks, p)
	}
	// The work directory's undo removes the disks.
	return nil, nil
}

// stepConvert compacts the disks into the future output directory, as
// Packer's stepConvertDisk does, or moves them there when compaction is
// off. Packer converts only the main disk; kiln treats every disk alike.
// Formats the VM cannot run on (vmdk, vhd, vhdx, ova) are exported from
// the qcow2 working disk here. Every converted image is verified against
// the working disk (qemu-img compare) before it is written to the output.
func stepConvert(ctx context.Context, st *State) (Undo, error) {
	c, img := st.Cfg, st.qemuImg()
	f := c.ExportFormat()
	for _, d := range st.Disks {
		dst := filepath.Join(st.OutDir, filepath.Base(d))
		if !c.Exported() && c.SkipCompaction && !c.DiskCompression {
			if err := os.Rename(d, dst); err != nil {
				return nil, fmt.Errorf("moving disk into output: %w", err)
			}
			continue
		}
		if c.Exported() {
			st.Opts.UI.Say("Exporting %s as %s", filepath.Base(d), c.Format)
		} else {
			st.Opts.UI.Say("Converting %s to a compact %s image", filepath.Base(d), c.Format)
		}
		if err := export.Export(ctx, img, d, c.WorkFormat, dst, f, st.Opts.UI.Percent("convert")); err != nil {
			return nil, err
		}
		// Free the space early: the work directory can be large.
		os.Remove(d)
	}
	return nil, nil
}

// stepCommit renames the finished output into place.
func stepCommit(ctx context.Context, st *State) (Undo, error) {
	if err := fsx.RenameDir(st.OutDir, st.OutputDir, st.Opts.Force); err != nil {
		return nil, fmt.Errorf("moving output into %s: %w", st.OutputDir, err)
	}
	return nil, nil
}

func sizeString(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func (st *State) logf(format string, args ...any) {
	st.Opts.Log.Info(fmt.Sprintf(format, args...))
}
