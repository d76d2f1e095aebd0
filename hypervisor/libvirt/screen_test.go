package libvirt

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The image libvirt streams becomes a PNG whatever the MIME type says, as
// long as the data agrees with it.
func TestScreenshotToPNG(t *testing.T) {
	img, err := toPNG("image/x-portable-pixmap", []byte("P6\n# libvirt\n1 1\n255\n\x01\x02\x03"))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := png.Decode(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("PPM not converted to PNG: %v", err)
	}
	if r, g, b, _ := dec.At(0, 0).RGBA(); r>>8 != 1 || g>>8 != 2 || b>>8 != 3 {
		t.Errorf("pixel %v", dec.At(0, 0))
	}
	// No MIME type (go-libvirt lost it): the magic number decides.
	if _, err := toPNG("", []byte("P6 1 1 255\n\x00\x00\x00")); err != nil {
		t.Errorf("PPM without MIME type: %v", err)
	}
	// A PNG passes through untouched.
	if got, err := toPNG("image/png", img); err != nil || !bytes.Equal(got, img) {
		t.Errorf("PNG passed through as %d bytes, %v", len(got), err)
	}
	for mime, data := range map[string]string{
		"image/png":               "P6 1 1 255\n\x00\x00\x00", // type and data disagree
		"image/x-portable-pixmap": "P6 2 2 255\n\x00",         // truncated
		"image/jpeg":              "\xff\xd8\xff\xe0",
	} {
		if _, err := toPNG(mime, []byte(data)); err == nil {
			t.Errorf("%s %q accepted", mime, data)
		}
	}
}

// TestRealScreenshot boots the test guest with a VNC display on the system
// libvirtd and saves its screen: a PNG of a VGA text or graphics mode that
// shows what SeaBIOS and the boot loader printed.
func TestRealScreenshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, name, vol, _ := systemGuest(ctx, t, "screen")
	// Until the guest's VGA BIOS ran, QEMU shows a placeholder of its own
	// ("Guest has not initialized the display"); wait for the guest to be
	// up, past the firmware and the boot loader, which write on the screen.
	d, _, stop := bootGuest(ctx, t, c, name, vol, true)
	defer stop()

	out := filepath.Join(t.TempDir(), "screen.png")
	// Twenty times, each replacing the last: libvirtd sends the image
	// before the call's reply in about one of five (go-libvirt hung on
	// that), so this many catch a client that expects one order.
	var img image.Image
	for i := range 20 {
		start := time.Now()
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.Screenshot(sctx, out)
		scancel()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = png.Decode(bytes.NewReader(data)); err != nil {
			t.Fatalf("screenshot %d is not a PNG (%d bytes): %v", i, len(data), err)
		}
		if i == 0 || i == 19 {
			t.Logf("screenshot %d: %dx%d PNG, %d bytes, in %s", i, img.Bounds().Dx(), img.Bounds().Dy(), len(data), time.Since(start).Round(time.Millisecond))
		}
	}
	// The kernel writes to ttyS0 only, so the screen stays in the VGA
	// text mode (80x25 cells of 9x16 pixels) that SeaBIOS and SYSLINUX
	// printed in: their lines are a few thousand light pixels on black.
	if b := img.Bounds(); b.Dx() != 720 || b.Dy() != 400 {
		t.Errorf("screenshot is %dx%d, want the 720x400 of VGA text mode", b.Dx(), b.Dy())
	}
	if n := foreground(img); n < 2000 {
		t.Errorf("only %d pixels differ from the background: no text on the screen", n)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) != 1 {
		t.Errorf("files next to the screenshot: %v", left)
	}

	// A stopped domain has no screen: an error, and the old file stays.
	if err := d.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	err := d.Screenshot(ctx, out)
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("screenshot of a stopped domain: %v", err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("old screenshot gone: %v", err)
	}
}

// foreground counts the pixels that differ from the top-left one.
func foreground(img image.Image) int {
	b := img.Bounds()
	bg := color.RGBAModel.Convert(img.At(b.Min.X, b.Min.Y))
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) != bg {
				n++
			}
		}
	}
	return n
}
