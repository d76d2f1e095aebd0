package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
	"github.com/kilnbuild/kiln/internal/ppm"
)

// Screendump saves the guest's screen as a PNG at pngPath, atomically: a
// reader sees the old file or the complete new one.
//
// It asks QEMU for PNG directly (screendump "format": "png", QEMU ≥ 7.1
// built with libpng). If QEMU refuses (older QEMU, or built without PNG
// support), it takes a PPM, QEMU's original format, and converts it in Go.
// QEMU writes the file itself, so pngPath must be writable by the QEMU
// process.
func Screendump(ctx context.Context, c *qmp.Client, pngPath string) error {
	dir := filepath.Dir(pngPath)
	tmp, err := tempName(dir, ".screendump-*.png")
	if err != nil {
		return fmt.Errorf("screendump to %s: %w", pngPath, err)
	}
	defer os.Remove(tmp) // no-op once renamed

	err = c.Execute(ctx, "screendump", map[string]string{"filename": tmp, "format": "png"}, nil)
	var qe *qmp.Error
	if errors.As(err, &qe) {
		if perr := screendumpPPM(ctx, c, dir, tmp); perr != nil {
			return fmt.Errorf("screendump to %s: png: %v; ppm fallback: %w", pngPath, err, perr)
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("screendump to %s: %w", pngPath, err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("screendump to %s: %w", pngPath, err)
	}
	if err := os.Rename(tmp, pngPath); err != nil {
		return fmt.Errorf("screendump to %s: %w", pngPath, err)
	}
	return nil
}

// screendumpPPM takes a PPM screendump and writes it to pngPath as PNG.
func screendumpPPM(ctx context.Context, c *qmp.Client, dir, pngPath string) error {
	ppmPath, err := tempName(dir, ".screendump-*.ppm")
	if err != nil {
		return err
	}
	defer os.Remove(ppmPath)
	if err := c.Execute(ctx, "screendump", map[string]string{"filename": ppmPath}, nil); err != nil {
		return err
	}
	data, err := os.ReadFile(ppmPath)
	if err != nil {
		return err
	}
	img, err := ppm.ToPNG(data)
	if err != nil {
		return fmt.Errorf("reading QEMU's PPM: %w", err)
	}
	return os.WriteFile(pngPath, img, 0o644)
}

// tempName reserves a fresh file name in dir for QEMU to (over)write.
func tempName(dir, pattern string) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	name := f.Name()
	return name, f.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
