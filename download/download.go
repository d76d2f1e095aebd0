// Package download fetches installer ISOs and disk images the way Packer's
// iso_url / iso_urls / iso_checksum options describe, into a cache shared
// between builds.
//
// Differences from Packer, on purpose:
//   - Only http(s), file:// and local paths are supported (no go-getter
//     git/s3/smb getters).
//   - Local files are never copied or linked into the cache: they are
//     verified in place and their path is returned. (Packer's go-getter
//     call uses Inplace mode too, so the result is the same; kiln just
//     skips the indirection.) TargetPath does not apply to local files.
//   - Interrupted downloads resume with an HTTP Range request instead of
//     starting over.
package download

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
)

// Request describes one artifact to fetch.
type Request struct {
	// URLs are tried in order (iso_url, or iso_urls as mirrors). Each is
	// http(s)://, file://, or a local path relative to Dir.
	URLs []string
	// Checksum in Packer syntax, see ParseChecksum. Required; "none"
	// disables verification.
	Checksum string
	// Dir is the base for relative paths (URLs and a file: checksum).
	Dir string
	// CacheDir holds downloads; empty means DefaultCacheDir(nil).
	CacheDir string
	// TargetPath (iso_target_path) is an explicit destination: a file, or
	// a directory (an existing one, one ending in a separator, or a path
	// without an extension, as in Packer) to put the cache name in.
	TargetPath string
	// Extension (iso_target_extension) of the cached file; default "iso".
	Extension string
	// Progress, if set, is called with bytes done and the total (-1 when
	// unknown), at most about 10 times a second and once at the end.
	Progress func(done, total int64)
	// Log, if set, receives one line per notable event.
	Log func(format string, args ...any)
}

func (r *Request) logf(format string, args ...any) {
	if r.Log != nil {
		r.Log(format, args...)
	}
}

// DefaultCacheDir returns the download cache directory: $KILN_CACHE_DIR,
// else $PACKER_CACHE_DIR (so an existing Packer cache is reused), else
// $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln. getenv is os.Getenv when
// nil. The result is absolute when the inputs allow it.
func DefaultCacheDir(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var dir string
	switch {
	case getenv("KILN_CACHE_DIR") != "":
		dir = getenv("KILN_CACHE_DIR")
	case getenv("PACKER_CACHE_DIR") != "":
		dir = getenv("PACKER_CACHE_DIR")
	case getenv("XDG_CACHE_HOME") != "":
		dir = filepath.Join(getenv("XDG_CACHE_HOME"), "kiln")
	case getenv("HOME") != "":
		dir = filepath.Join(getenv("HOME"), ".cache", "kiln")
	default:
		return "", errors.New("no cache directory: set KILN_CACHE_DIR, XDG_CACHE_HOME or HOME")
	}
	return filepath.Abs(dir)
}

// Fetch makes the artifact available locally and returns its path.
//
// Local sources are verified in place. Remote sources go to the cache as
// sha1("algo:hex").EXT, with the checksum resolved to that form first
// (sha1(url).EXT when the checksum is "none"): the name Packer uses, so a
// Packer cache directory works as kiln's. A cached file
// that verifies is returned without any request. Otherwise the file is
// downloaded to NAME.part (resuming a previous partial download with a
// Range request, guarded by If-Range with the ETag or Last-Modified kept in
// NAME.part.validator), verified, and renamed into place. A checksum
// mismatch removes the partial file; a resumed download that fails to
// verify is retried once from the start. Concurrent Fetches of the same name, in any
// process, are serialised by a lock on NAME.lock, which stays behind.
//
// Each URL is tried in order; the error lists every URL's failure. When
// ctx is cancelled Fetch stops at once, keeping the .part file for resume.
func Fetch(ctx context.Context, r Request) (string, error) {
	if len(r.URLs) == 0 {
		return "", errors.New("download: no URL given")
	}
	algo, val, err := ParseChecksum(r.Checksum)
	if err != nil {
		return "", err
	}
	if r.Extension == "" {
		r.Extension = "iso"
	}
	res := &resolver{algo: algo, val: val, dir: r.Dir}

	var errs []error
	for _, u := range r.URLs {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("download %s: %w", u, err)
		}
		p, err := fetchOne(ctx, &r, res, u)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("download %s: %w", u, err)
		}
		r.logf("download: %s failed: %v", u, err)
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	if len(errs) == 1 {
		return "", fmt.Errorf("download failed: %w", errs[0])
	}
	return "", fmt.Errorf("download failed from all %d URLs:\n%w", len(errs), errors.Join(errs...))
}

// source is a parsed URL: exactly one of local (absolute path) or url.
type source struct {
	local string
	url   *url.URL
}

// base is the file name used to look the source up in a checksum file.
func (s source) base() string {
	if s.local != "" {
		return filepath.Base(s.local)
	}
	return path.Base(s.url.Path)
}

func parseSource(raw, dir string) (source, error) {
	if isLocalPath(raw) {
		p := raw
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return source{}, err
		}
		return source{local: abs}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return source{}, fmt.Errorf("parsing URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return source{url: u}, nil
	case "file":
		// file:///abs/path, and the common mistake file://rel/path or
		// file:rel/path, which Packer accepts as relative paths.
		p := u.Path
		if u.Opaque != "" {
			p = u.Opaque
		} else if u.Host != "" && u.Host != "localhost" {
			p = u.Host + u.Path
		}
		return parseSource(filepath.FromSlash(p), dir)
	}
	return source{}, fmt.Errorf("unsupported URL scheme %q (kiln supports http, https, file and local paths)", u.Scheme)
}

// isLocalPath reports whether raw is a path rather than a URL: no
// "scheme://" or "scheme:" prefix, or a Windows drive letter.
func isLocalPath(raw string) bool {
	if runtime.GOOS == "windows" && len(raw) >= 2 && raw[1] == ':' {
		return true
	}
	i := strings.Index(raw, ":")
	if i <= 0 {
		return true
	}
	for _, c := range raw[:i] {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
		if !ok {
			return true // "./a:b" is a path
		}
	}
	return false
}

func fetchOne(ctx context.Context, r *Request, res *resolver, raw string) (string, error) {
	src, err := parseSource(raw, r.Dir)
	if err != nil {
		return "", err
	}
	want, err := res.forSource(ctx, src.base())
	if err != nil {
		return "", err
	}
	if src.local != "" {
		return fetchLocal(ctx, r, src.local, want)
	}
	target, err := targetPath(r, want, src.url.String())
	if err != nil {
		return "", err
	}
	return fetchRemote(ctx, r, src.url, target, want)
}

// fetchLocal verifies a local file in place.
func fetchLocal(ctx context.Context, r *Request, p string, want sum) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return "", fmt.Errorf("%s is a directory", p)
	}
	if want.algo == AlgoNone {
		r.logf("download: using %s (checksum not verified: none)", p)
		return p, nil
	}
	r.logf("download: verifying %s", p)
	if err := verifyFile(ctx, p, want, r.Progress); err != nil {
		return "", err
	}
	return p, nil
}

// targetPath computes where a remote source is stored.
func targetPath(r *Request, want sum, rawURL string) (string, error) {
	// Packer resolves the checksum (bare hex, file:) to "algo:hex" while
	// validating the template and keys the cache on that string.
	key := want.String()
	if want.algo == AlgoNone {
		key = rawURL
	}
	h := sha1.Sum([]byte(key))
	name := hex.EncodeToString(h[:]) + "." + r.Extension

	if t := r.TargetPath; t != "" {
		if !filepath.IsAbs(t) {
			t = filepath.Join(r.Dir, t)
		}
		st, err := os.Stat(t)
		isDir := err == nil && st.IsDir() ||
			strings.HasSuffix(r.TargetPath, "/") || strings.HasSuffix(r.TargetPath, string(filepath.Separator)) ||
			errors.Is(err, os.ErrNotExist) && filepath.Ext(t) == ""
		if isDir {
			t = filepath.Join(t, name)
		}
		return filepath.Abs(t)
	}
	dir := r.CacheDir
	if dir == "" {
		var err error
		if dir, err = DefaultCacheDir(nil); err != nil {
			return "", err
		}
	}
	return filepath.Abs(filepath.Join(dir, name))
}
