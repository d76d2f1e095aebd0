package download

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/internal/fsx"
)

// ChecksumError reports a file whose content does not match the expected
// checksum.
type ChecksumError struct {
	Source   string // URL or path
	Expected string // "algo:hex"
	Actual   string // "algo:hex"
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum mismatch for %s: expected %s, got %s", e.Source, e.Expected, e.Actual)
}

// client has no overall timeout: ISOs take as long as they take, and ctx
// bounds the wait.
var client = &http.Client{}

func newGet(ctx context.Context, u *url.URL) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	// A transparently gunzipped body would make byte offsets (resume) and
	// Content-Length meaningless.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "kiln")
	return req, nil
}

// httpGet fetches a small resource (a checksum file).
func httpGet(ctx context.Context, u *url.URL) (io.ReadCloser, error) {
	req, err := newGet(ctx, u)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}
	return resp.Body, nil
}

// fetchRemote returns target, downloading it first unless a verified copy
// is already there.
func fetchRemote(ctx context.Context, r *Request, u *url.URL, target string, want sum) (string, error) {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return "", fmt.Errorf("creating cache directory: %w", err)
	}
	unlock, err := lockFile(ctx, target+".lock", r.logf)
	if err != nil {
		return "", fmt.Errorf("locking %s: %w", target, err)
	}
	defer unlock()

	if st, err := os.Stat(target); err == nil && st.Mode().IsRegular() {
		if want.algo == AlgoNone {
			r.logf("download: using cached %s (checksum not verified: none)", target)
			return target, nil
		}
		err := verifyFile(ctx, target, want, nil)
		if err == nil {
			r.logf("download: using cached %s", target)
			return target, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		r.logf("download: cached %s is unusable (%v); downloading again", target, err)
		if err := os.Remove(target); err != nil {
			return "", fmt.Errorf("removing bad cached file: %w", err)
		}
	}

	part := target + ".part"
	resumed, err := download(ctx, r, u, part, want)
	var ce *ChecksumError
	if errors.As(err, &ce) && resumed {
		// The prefix came from an earlier attempt, maybe of a different
		// file under the same name; one clean try settles it.
		r.logf("download: %v after resuming; retrying from the start", err)
		_, err = download(ctx, r, u, part, want)
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(part, target); err != nil {
		return "", fmt.Errorf("moving download into place: %w", err)
	}
	os.Remove(part + ".validator")
	if err := fsx.SyncDir(filepath.Dir(target)); err != nil {
		return "", err
	}
	r.logf("download: %s => %s", u.Redacted(), target)
	return target, nil
}

// download fills part with the body of u, resuming from what part already
// holds, and verifies it. It reports whether it resumed. A failed
// verification removes part; any other failure keeps it for a later resume.
func download(ctx context.Context, r *Request, u *url.URL, part string, want sum) (resumed bool, err error) {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	have := st.Size()
	validatorFile := part + ".validator"
	validator := ""
	if have > 0 {
		if b, err := os.ReadFile(validatorFile); err == nil {
			validator = strings.TrimSpace(string(b))
		}
		// Without a validator a changed file would be spliced silently;
		// only a checksum can catch that, so "none" starts over.
		if validator == "" && want.algo == AlgoNone {
			have = 0
		}
	}

	req, err := newGet(ctx, u)
	if err != nil {
		return false, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		if validator != "" {
			req.Header.Set("If-Range", validator)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	total := int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			// Not the range we asked for: drop it and start over.
			resp.Body.Close()
			return restart(ctx, r, u, f, part, want, fmt.Sprintf("unexpected Content-Range %q", resp.Header.Get("Content-Range")))
		}
		r.logf("download: resuming %s at byte %d", u.Redacted(), have)
		total = size
		resumed = true
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			r.logf("download: %s: server sent the whole file instead of a range; starting over", u.Redacted())
		}
		have = 0
		total = resp.ContentLength
		if err := saveValidator(validatorFile, resp.Header); err != nil {
			return false, err
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		resp.Body.Close()
		return restart(ctx, r, u, f, part, want, "partial file is longer than the remote file")
	default:
		return false, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}

	h := hasherFor(want)
	if have == 0 {
		if err := f.Truncate(0); err != nil {
			return false, err
		}
	} else if h != nil {
		// Re-hash the prefix: the running hash is not persisted.
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return false, fmt.Errorf("hashing partial download: %w", err)
		}
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return false, err
	}

	prog := newProgress(r.Progress, total)
	var w io.Writer = f
	if h != nil {
		w = io.MultiWriter(f, h)
	}
	n, err := copyProgress(w, resp.Body, have, prog)
	done := have + n
	if err != nil {
		return resumed, fmt.Errorf("downloading %s (got %d bytes, partial file kept for resume): %w", u.Redacted(), done, err)
	}
	if total >= 0 && done != total {
		return resumed, fmt.Errorf("downloading %s: got %d bytes, expected %d", u.Redacted(), done, total)
	}
	prog.finish(done)
	if err := f.Sync(); err != nil {
		return resumed, fmt.Errorf("syncing %s: %w", part, err)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want.hex {
			f.Close()
			os.Remove(part)
			os.Remove(validatorFile)
			return resumed, &ChecksumError{Source: u.Redacted(), Expected: want.String(), Actual: want.algo + ":" + got}
		}
	}
	return resumed, nil
}

// restart discards the partial file and downloads from the beginning.
func restart(ctx context.Context, r *Request, u *url.URL, f *os.File, part string, want sum, why string) (bool, error) {
	r.logf("download: %s: %s; starting over", u.Redacted(), why)
	if err := f.Truncate(0); err != nil {
		return false, err
	}
	os.Remove(part + ".validator")
	return download(ctx, r, u, part, want)
}

// saveValidator records the response's ETag (if strong) or Last-Modified,
// to send as If-Range when resuming; a resumed range then comes from the
// same version of the file or the server sends the whole new one.
func saveValidator(p string, h http.Header) error {
	v := h.Get("ETag")
	if strings.HasPrefix(v, "W/") {
		v = "" // weak ETags are not allowed in If-Range
	}
	if v == "" {
		v = h.Get("Last-Modified")
	}
	if v == "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return fsx.WriteFile(p, []byte(v+"\n"), 0o644)
}

// parseContentRange parses "bytes START-END/SIZE"; size is -1 for "*".
func parseContentRange(s string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if sz == "*" {
		return start, -1, true
	}
	size, err = strconv.ParseInt(sz, 10, 64)
	return start, size, err == nil
}

func hasherFor(want sum) hash.Hash {
	if want.algo == AlgoNone {
		return nil
	}
	return newHash(want.algo)
}

// verifyFile hashes p and compares it with want.
func verifyFile(ctx context.Context, p string, want sum, progress func(done, total int64)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := newHash(want.algo)
	prog := newProgress(progress, st.Size())
	n, err := fsx.CopyContext(ctx, h, f, prog.update)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", p, err)
	}
	prog.finish(n)
	if got := hex.EncodeToString(h.Sum(nil)); got != want.hex {
		return &ChecksumError{Source: p, Expected: want.String(), Actual: want.algo + ":" + got}
	}
	return nil
}

// copyProgress copies src to dst, reporting base+copied to prog.
func copyProgress(dst io.Writer, src io.Reader, base int64, prog *progress) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
			prog.update(base + n)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// progress rate-limits a progress callback to progressEvery.
type progress struct {
	fn    func(done, total int64)
	total int64
	last  time.Time
}

const progressEvery = 100 * time.Millisecond

func newProgress(fn func(done, total int64), total int64) *progress {
	return &progress{fn: fn, total: total}
}

func (p *progress) update(done int64) {
	if p.fn == nil {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.fn(done, p.total)
	}
}

func (p *progress) finish(done int64) {
	if p.fn != nil {
		p.fn(done, p.total)
	}
}
