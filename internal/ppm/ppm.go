// Package ppm decodes binary PPM (P6) images, the format QEMU's screendump
// and libvirt's virDomainScreenshot produce, and re-encodes them as PNG,
// the format kiln saves screenshots in (any image viewer opens it, and it
// is a tenth of the size).
package ppm

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"strconv"
)

// MIMEType is what libvirt calls a PPM.
const MIMEType = "image/x-portable-pixmap"

// maxPixels bounds width × height so a corrupt header cannot make Decode
// allocate gigabytes; an 8K screen has half as many.
const maxPixels = 1 << 26

// Decode reads a binary PPM: "P6", width, height and maxval separated by
// whitespace, with "#" comments running to the end of a line anywhere
// among them, then exactly one whitespace byte and the RGB samples, one
// byte each (two, big-endian, when maxval > 255). Samples are scaled to
// 8 bits.
func Decode(r io.Reader) (image.Image, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	magic, err := token(br)
	if err != nil {
		return nil, err
	}
	if magic != "P6" {
		return nil, fmt.Errorf("not a binary PPM (magic %q)", magic)
	}
	var hdr [3]int // width, height, maxval
	for i := range hdr {
		tok, err := token(br)
		if err != nil {
			return nil, err
		}
		if hdr[i], err = strconv.Atoi(tok); err != nil || hdr[i] <= 0 {
			return nil, fmt.Errorf("bad PPM header field %q", tok)
		}
	}
	w, h, maxval := hdr[0], hdr[1], hdr[2]
	if maxval > 65535 || w > maxPixels || h > maxPixels || w*h > maxPixels {
		return nil, fmt.Errorf("unsupported PPM %dx%d maxval %d", w, h, maxval)
	}
	bps := 1
	if maxval > 255 {
		bps = 2
	}
	data := make([]byte, w*h*3*bps)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, fmt.Errorf("PPM pixel data (%dx%d): %w", w, h, err)
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		for ch := range 3 {
			v := int(data[(i*3+ch)*bps])
			if bps == 2 {
				v = v<<8 | int(data[(i*3+ch)*bps+1])
			}
			if maxval != 255 {
				v = v * 255 / maxval
			}
			img.Pix[i*4+ch] = uint8(v)
		}
		img.Pix[i*4+3] = 0xff
	}
	return img, nil
}

// ToPNG converts a PPM to PNG.
func ToPNG(ppm []byte) ([]byte, error) {
	img, err := Decode(bytes.NewReader(ppm))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encoding PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// token reads one header token, skipping whitespace and comments before
// it, and consumes the single byte that ends it: whitespace, or the "#"
// of a comment, which is then skipped too.
func token(r *bufio.Reader) (string, error) {
	var tok []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return "", fmt.Errorf("PPM header: %w", err)
		}
		switch b {
		case '#':
			if _, err := r.ReadString('\n'); err != nil {
				return "", fmt.Errorf("PPM header comment: %w", err)
			}
			if len(tok) > 0 {
				return string(tok), nil
			}
		case ' ', '\t', '\n', '\r', '\v', '\f':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			tok = append(tok, b)
		}
	}
}
