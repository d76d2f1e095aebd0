package export

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnbuild/kiln/disk"
	"github.com/kilnbuild/kiln/internal/fsx"
)

// Export writes src (format srcFormat; empty: probed) to dst in format f.
// dst appears only once it is complete and verified; on failure or
// cancellation no temporary file is left behind. progress, if set,
// receives increasing percentages ending with 100.
func Export(ctx context.Context, tool disk.Tool, src, srcFormat, dst string, f Format, progress func(pct float64)) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if err := checkPaths(src, dst); err != nil {
		return err
	}
	f = f.withDefaults()
	if progress == nil {
		progress = func(float64) {}
	}
	if f.Name == "ova" {
		return exportOVA(ctx, tool, src, srcFormat, dst, f, progress)
	}
	return convertVerified(ctx, tool, src, srcFormat, dst, f, progress)
}

// checkPaths refuses to overwrite the source with its own export.
func checkPaths(src, dst string) error {
	if src == "" || dst == "" {
		return errors.New("export: source and destination paths are required")
	}
	a, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	b, err := filepath.Abs(dst)
	if err != nil {
		return err
	}
	if a == b {
		return fmt.Errorf("export: destination %s is the source image", dst)
	}
	si, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if di, err := os.Stat(dst); err == nil && os.SameFile(si, di) {
		return fmt.Errorf("export: destination %s is the source image", dst)
	}
	return nil
}

// convertVerified converts src into a temporary file next to dst, checks
// with qemu-img compare that the guest sees the same bytes, and only then
// renames it to dst. A bad conversion is therefore never visible at dst.
func convertVerified(ctx context.Context, tool disk.Tool, src, srcFormat, dst string, f Format, progress func(float64)) (err error) {
	tmp := fsx.TempName(dst)
	defer func() {
		if err != nil {
			removeQuiet(tmp)
		}
	}()
	dstFormat, compress, extra := f.convertArgs()
	err = tool.Convert(ctx, disk.ConvertOptions{
		Src:       src,
		SrcFormat: srcFormat,
		Dst:       tmp,
		DstFormat: dstFormat,
		Compress:  compress,
		Extra:     extra,
		Progress:  progress,
	})
	if err != nil {
		return fmt.Errorf("exporting as %s: %w", f.Name, err) // err names src and dst
	}
	if err := tool.CompareFormats(ctx, src, srcFormat, tmp, dstFormat); err != nil {
		return fmt.Errorf("verifying the %s export of %s: %w", f.Name, src, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("exporting %s: moving %s into place: %w", src, dst, err)
	}
	return fsx.SyncDir(filepath.Dir(dst))
}

// removeQuiet removes a temporary file on a failure path: the caller is
// already returning the error that matters, and the file may not exist.
func removeQuiet(p string) { _ = os.Remove(p) }
