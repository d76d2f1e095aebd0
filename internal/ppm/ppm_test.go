package ppm

import (
	"bytes"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		w, h int
		px   []color.NRGBA // row by row
	}{
		// libvirt's QEMU driver: QEMU's screendump header, no comment.
		{"plain", "P6\n2 1\n255\n\xff\x00\x00\x00\x00\xff", 2, 1,
			[]color.NRGBA{{0xff, 0, 0, 0xff}, {0, 0, 0xff, 0xff}}},
		// Comments before a token, right after one, and on their own line;
		// the pixel data starts with bytes that look like whitespace and
		// "#", which must not be skipped.
		{"comments", "P6 # made by hand\n1#w\n# h next\n2\n255\n\x0a\x23\x20\x09\x0d\x30", 1, 2,
			[]color.NRGBA{{0x0a, 0x23, 0x20, 0xff}, {0x09, 0x0d, 0x30, 0xff}}},
		// 16-bit samples are big-endian and scaled to 8 bits.
		{"16bit", "P6 1 1 65535\n\xff\xff\x80\x00\x00\x00", 1, 1,
			[]color.NRGBA{{0xff, 0x7f, 0, 0xff}}},
		// maxval 15 scales 15 to 255.
		{"maxval15", "P6 1 1 15\n\x0f\x00\x05", 1, 1,
			[]color.NRGBA{{0xff, 0, 0x55, 0xff}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Decode(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Fatalf("size %dx%d, want %dx%d", b.Dx(), b.Dy(), tc.w, tc.h)
			}
			for i, want := range tc.px {
				got := color.NRGBAModel.Convert(img.At(i%tc.w, i/tc.w)).(color.NRGBA)
				if got != want {
					t.Errorf("pixel %d = %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"ascii P3":     "P3 1 1 255\n0 0 0",
		"truncated":    "P6 2 2 255\n\x00",
		"no header":    "P6 2",
		"zero width":   "P6 0 1 255\n",
		"bad maxval":   "P6 1 1 70000\n\x00\x00\x00",
		"huge":         "P6 100000 100000 255\n",
		"not a number": "P6 1 x 255\n\x00\x00\x00",
	} {
		if _, err := Decode(strings.NewReader(in)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestToPNG(t *testing.T) {
	out, err := ToPNG([]byte("P6\n# QEMU\n2 1\n255\n\xff\x00\x00\x00\x00\xff"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	r, _, b, _ := img.At(0, 0).RGBA()
	r2, _, b2, _ := img.At(1, 0).RGBA()
	if img.Bounds().Dx() != 2 || r>>8 != 0xff || b != 0 || r2 != 0 || b2>>8 != 0xff {
		t.Errorf("PNG %v: pixels %v %v", img.Bounds(), img.At(0, 0), img.At(1, 0))
	}
}
