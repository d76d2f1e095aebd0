package libvirt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

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
// It runs on a connection of its own, bounded by ctx: go-libvirt's
// DomainScreenshot now and then deadlocks its connection (see call), which
// must not take the build's connection with it.
func (d *Domain) Screenshot(ctx context.Context, pngPath string) error {
	c, err := Dial(ctx, d.c.URI, DialOptions{})
	if err != nil {
		return fmt.Errorf("screenshot of domain %s: %w", d.Name, err)
	}
	defer c.Close()
	dom, err := c.LookupDomain(ctx, d.Name)
	if err != nil {
		return fmt.Errorf("screenshot of domain %s: %w", d.Name, err)
	}
	return dom.screenshotPNG(ctx, pngPath)
}

func (d *Domain) screenshotPNG(ctx context.Context, pngPath string) error {
	// Now and then the stream ends before any data (seen early in a
	// guest's boot, a few seconds after the domain started): try again.
	var buf cappedBuffer
	var mime string
	var err error
	for attempt := 1; ; attempt++ {
		buf, mime = cappedBuffer{}, ""
		err = d.screenshot(ctx, &buf, &mime)
		var lerr golibvirt.Error // the daemon's own answer: final
		if err == nil || buf.Len() > 0 || errors.As(err, &lerr) || attempt == screenshotTries || ctx.Err() != nil {
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
		return fmt.Errorf("screenshot of domain %s: %w", d.Name, err)
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

// screenshot runs one virDomainScreenshot into buf.
func (d *Domain) screenshot(ctx context.Context, buf *cappedBuffer, mime *string) error {
	return d.c.call(ctx, func() error {
		m, err := d.c.l.DomainScreenshot(d.dom, buf, 0, 0)
		if len(m) > 0 {
			*mime = m[0]
		}
		// go-libvirt decodes the MIME type from the empty packet that ends
		// the stream instead of from the reply before it, so the call fails
		// with an XDR error after the whole image arrived. Errors while
		// the image streams are the daemon's (a libvirt Error) or a lost
		// connection; anything else came after the end, and toPNG checks
		// the image is whole.
		var lerr golibvirt.Error
		if err != nil && buf.Len() > 0 && buf.err == nil && !errors.As(err, &lerr) && !errors.Is(err, golibvirt.ErrInterrupted) {
			err = nil
		}
		return err
	})
}

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
