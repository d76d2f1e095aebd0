package libvirt

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/internal/fsx"
	"github.com/kilnbuild/kiln/internal/ppm"
)

// maxScreenshot bounds the image a daemon may stream: an 8K screen as PPM
// is 100 MB, and a broken one must not fill kiln's memory.
const maxScreenshot = 128 << 20

// Screenshot saves the domain's first display as a PNG at pngPath,
// atomically. virDomainScreenshot streams the image over the RPC
// connection, so it works the same on a remote host, and the domain needs
// a display (spec.VNC). The QEMU driver sends QEMU's screendump: a PNG
// where QEMU can write one (libvirt 9.0 with QEMU 7.2 does), saved as it
// is, else a PPM, converted here.
//
// It runs on a connection of its own, bounded by ctx, and speaks the RPC
// itself (see wireConn): go-libvirt's DomainScreenshot now and then
// deadlocks its connection.
func (d *Domain) Screenshot(ctx context.Context, pngPath string) error {
	w, closeWire, err := dialWire(ctx, d.c.URI)
	if err != nil {
		return fmt.Errorf("screenshot of domain %s: %w", d.Name, err)
	}
	defer closeWire()
	// A stream that ends before any data was seen early in a guest's
	// boot, a few seconds after the domain started: try again.
	var buf cappedBuffer
	var mime string
	for attempt := 1; ; attempt++ {
		buf = cappedBuffer{}
		mime, err = w.screenshot(d.dom, &buf)
		// An error is final: the daemon's answer, or a lost connection.
		if err != nil || buf.Len() > 0 || attempt == screenshotTries || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if err != nil {
		return fmt.Errorf("screenshot of domain %s: %w", d.Name, ctxErr(ctx, err))
	}
	img, err := toPNG(mime, buf.Bytes())
	if err != nil {
		return fmt.Errorf("screenshot of domain %s: %w", d.Name, err)
	}
	if err := fsx.WriteFile(pngPath, img, 0o644); err != nil {
		return fmt.Errorf("saving the screenshot of domain %s: %w", d.Name, err)
	}
	return nil
}

// screenshotTries bounds the attempts when the stream comes back empty.
const screenshotTries = 5

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// toPNG converts the image libvirt sent, or checks a PNG decodes. The
// MIME type, when known, must agree with the data.
func toPNG(mime string, data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, []byte("P6")) && (mime == "" || mime == ppm.MIMEType):
		img, err := ppm.ToPNG(data)
		if err != nil {
			return nil, fmt.Errorf("converting the %s image: %w", ppm.MIMEType, err)
		}
		return img, nil
	case bytes.HasPrefix(data, pngMagic) && (mime == "" || mime == "image/png"):
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("checking the image/png image: %w", err)
		}
		return data, nil
	}
	head := data[:min(len(data), 8)]
	return nil, fmt.Errorf("unsupported screenshot (MIME type %q, %d bytes starting %q)", mime, len(data), strings.ToValidUTF8(string(head), "?"))
}

// cappedBuffer is a bytes.Buffer that refuses to grow past maxScreenshot
// and remembers that it did.
type cappedBuffer struct {
	bytes.Buffer
	err error
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxScreenshot {
		b.err = fmt.Errorf("screenshot larger than %d bytes", maxScreenshot)
		return 0, b.err
	}
	return b.Buffer.Write(p)
}
