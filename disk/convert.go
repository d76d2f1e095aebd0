package disk

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/internal/fsx"
)

// ConvertOptions describes one qemu-img convert.
type ConvertOptions struct {
	Src       string
	SrcFormat string // empty: probed by qemu-img
	Dst       string
	DstFormat string // required, e.g. "qcow2", "raw", "vmdk"
	// Compress (-c) writes compressed clusters (qcow2, vmdk). Slow: about
	// 10-20 MiB/s per core with zlib; pass "-o", "compression_type=zstd"
	// in Extra for qcow2 that decompresses on QEMU >= 5.1.
	Compress bool
	// Extra arguments go before the source path (e.g. "-o", "subformat=
	// streamOptimized", or "-W", "-m", "8").
	Extra []string
	// Progress, if set, is called with strictly increasing percentages,
	// ending with 100 on success.
	Progress func(pct float64)
}

// lockRetries is how often Convert retries when the source is locked,
// and lockRetryDelay the first wait (doubled each time). Package
// variables so tests can shorten them.
var (
	lockRetries    = 3
	lockRetryDelay = 2 * time.Second
)

// lockErrText is what qemu-img prints when another process (usually a
// QEMU that has not quite exited) still holds the image. Packer retries on
// exactly this message, and so do we.
const lockErrText = `Failed to get shared "write" lock`

// Convert converts o.Src into o.Dst. The output is written under a
// temporary name in Dst's directory and renamed into place only after
// qemu-img succeeded and the data was fsynced (qemu-img's default
// destination cache mode does not flush), so Dst is never a partial image.
// On failure or cancellation (which kills qemu-img) the temporary file is
// removed.
func (t Tool) Convert(ctx context.Context, o ConvertOptions) (err error) {
	if o.Src == "" || o.Dst == "" || o.DstFormat == "" {
		return fmt.Errorf("convert: Src, Dst and DstFormat are required")
	}
	tmp := fsx.TempName(o.Dst)
	defer func() {
		if err != nil {
			if rerr := removeIfExists(tmp); rerr != nil {
				t.logf("disk: removing %s: %v", tmp, rerr)
			}
		}
	}()

	delay := lockRetryDelay
	for attempt := 1; ; attempt++ {
		err = t.convertOnce(ctx, o, tmp)
		if err == nil || attempt >= lockRetries || ctx.Err() != nil || !strings.Contains(err.Error(), lockErrText) {
			break
		}
		t.logf("disk: %s is locked by another process; retrying in %v", o.Src, delay)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("converting %s: %w (after: %v)", o.Src, ctx.Err(), err)
		case <-timer.C:
		}
		delay *= 2
	}
	if err != nil {
		return fmt.Errorf("converting %s to %s: %w", o.Src, o.Dst, err)
	}

	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("converting %s to %s: %w", o.Src, o.Dst, err)
	}
	if err := os.Rename(tmp, o.Dst); err != nil {
		return fmt.Errorf("converting %s: moving output into place: %w", o.Src, err)
	}
	if err := fsx.SyncDir(filepath.Dir(o.Dst)); err != nil {
		return err
	}
	return nil
}

func (t Tool) convertOnce(ctx context.Context, o ConvertOptions, tmp string) error {
	args := []string{"convert", "-p"}
	if o.SrcFormat != "" {
		args = append(args, "-f", o.SrcFormat)
	}
	args = append(args, "-O", o.DstFormat)
	if o.Compress {
		args = append(args, "-c")
	}
	args = append(args, o.Extra...)
	args = append(args, o.Src, tmp)

	cmd := t.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return cmdError(ctx, cmd, &stderr, err)
	}
	last := -1.0
	sc := bufio.NewScanner(stdout)
	sc.Split(scanCRLF)
	for sc.Scan() {
		pct, ok := parseProgress(sc.Text())
		if ok && pct > last {
			last = pct
			if o.Progress != nil {
				o.Progress(pct)
			}
		}
	}
	// Keep draining if the scanner gave up, or qemu-img blocks on a full
	// pipe and Wait never returns.
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return cmdError(ctx, cmd, &stderr, err)
	}
	if last < 100 && o.Progress != nil {
		o.Progress(100)
	}
	return nil
}

var progressRE = regexp.MustCompile(`\((\d+(?:\.\d+)?)/100%\)`)

// parseProgress reads qemu-img -p's "    (12.34/100%)".
func parseProgress(line string) (float64, bool) {
	m := progressRE.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// scanCRLF splits on \r or \n: qemu-img redraws its progress line with \r.
func scanCRLF(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	return f.Close()
}
