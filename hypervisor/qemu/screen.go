package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
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
	ppm, err := tempName(dir, ".screendump-*.ppm")
	if err != nil {
		return err
	}
	defer os.Remove(ppm)
	if err := c.Execute(ctx, "screendump", map[string]string{"filename": ppm}, nil); err != nil {
		return err
	}
	f, err := os.Open(ppm)
	if err != nil {
		return err
	}
	img, err := decodePPM(bufio.NewReader(f))
	f.Close()
	if err != nil {
		return fmt.Errorf("reading QEMU's PPM: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(pngPath, buf.Bytes(), 0o644)
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

// decodePPM reads a binary PPM (P6), the format QEMU's screendump writes:
// "P6", width, height, maxval separated by whitespace (comments allowed),
// one whitespace byte, then RGB samples (1 byte each, 2 if maxval > 255).
func decodePPM(r *bufio.Reader) (image.Image, error) {
	var hdr [4]int
	magic, err := ppmToken(r)
	if err != nil {
		return nil, err
	}
	if magic != "P6" {
		return nil, fmt.Errorf("not a binary PPM (magic %q)", magic)
	}
	for i := 1; i < 4; i++ {
		tok, err := ppmToken(r)
		if err != nil {
			return nil, err
		}
		if hdr[i], err = strconv.Atoi(tok); err != nil || hdr[i] <= 0 {
			return nil, fmt.Errorf("bad PPM header field %q", tok)
		}
	}
	w, h, maxval := hdr[1], hdr[2], hdr[3]
	if maxval > 65535 || w > 1<<15 || h > 1<<15 {
		return nil, fmt.Errorf("unsupported PPM %dx%d maxval %d", w, h, maxval)
	}
	bps := 1
	if maxval > 255 {
		bps = 2
	}
	data := make([]byte, w*h*3*bps)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("PPM pixel data: %w", err)
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		for ch := range 3 {
			v := int(data[(i*3+ch)*bps])
			if bps == 2 {
				v = v<<8 | int(data[(i*3+ch)*bps+1])
			}
			img.Pix[i*4+ch] = uint8(v * 255 / maxval)
		}
		img.Pix[i*4+3] = 0xff
	}
	return img, nil
}

// ppmToken reads one whitespace-separated header token, skipping
// comments, and consumes the single whitespace byte after it.
func ppmToken(r *bufio.Reader) (string, error) {
	var tok []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return "", fmt.Errorf("PPM header: %w", err)
		}
		switch {
		case b == '#' && len(tok) == 0:
			if _, err := r.ReadString('\n'); err != nil {
				return "", fmt.Errorf("PPM header: %w", err)
			}
		case b == ' ' || b == '\t' || b == '\n' || b == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			tok = append(tok, b)
		}
	}
}
