package download

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
)

// Checksum algorithms as ParseChecksum names them.
const (
	AlgoMD5    = "md5"
	AlgoSHA1   = "sha1"
	AlgoSHA256 = "sha256"
	AlgoSHA512 = "sha512"
	// AlgoFile: the sum is looked up in a checksum file; ParseChecksum
	// returns the file's URL or path in place of the hex sum.
	AlgoFile = "file"
	// AlgoNone: no verification.
	AlgoNone = "none"
)

// hexLen is the length of each algorithm's sum in hex digits; a bare sum
// is typed by its length, as Packer (go-getter) does.
var hexLen = map[string]int{AlgoMD5: 32, AlgoSHA1: 40, AlgoSHA256: 64, AlgoSHA512: 128}

func newHash(algo string) hash.Hash {
	switch algo {
	case AlgoMD5:
		return md5.New()
	case AlgoSHA1:
		return sha1.New()
	case AlgoSHA256:
		return sha256.New()
	case AlgoSHA512:
		return sha512.New()
	}
	panic("download: unknown algorithm " + algo)
}

// ParseChecksum parses Packer's iso_checksum syntax:
//
//	sha256:HEX, sha512:HEX, sha1:HEX, md5:HEX   explicit type
//	HEX                                          type from the length (32, 40, 64, 128)
//	file:URL-or-path                             a SHA256SUMS-style file
//	none                                         no verification
//
// It returns the algorithm (one of the Algo constants) and the lower-case
// hex sum; for AlgoFile the second value is the checksum file's location,
// and for AlgoNone it is empty. The error message is meant for users.
func ParseChecksum(s string) (algo string, hexsum string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", fmt.Errorf(`checksum is empty: give "sha256:HEX" (or md5/sha1/sha512, or "file:URL") or "none" to skip verification`)
	}
	if strings.EqualFold(s, AlgoNone) {
		return AlgoNone, "", nil
	}
	typ, val, hasType := strings.Cut(s, ":")
	if !hasType {
		sum, algo, err := bareSum(s)
		return algo, sum, err
	}
	typ = strings.ToLower(typ)
	switch typ {
	case AlgoFile:
		if val == "" {
			return "", "", fmt.Errorf("checksum %q: file: needs a URL or path", s)
		}
		return AlgoFile, val, nil
	case AlgoMD5, AlgoSHA1, AlgoSHA256, AlgoSHA512:
		val = strings.ToLower(strings.TrimSpace(val))
		if err := checkHex(val, hexLen[typ]); err != nil {
			return "", "", fmt.Errorf("checksum %q: %s sum %w", s, typ, err)
		}
		return typ, val, nil
	}
	return "", "", fmt.Errorf("checksum %q: unknown type %q (want md5, sha1, sha256, sha512, file or none)", s, typ)
}

// bareSum types a hex sum by its length.
func bareSum(s string) (sum, algo string, err error) {
	sum = strings.ToLower(s)
	for a, n := range hexLen {
		if len(sum) == n {
			if err := checkHex(sum, n); err != nil {
				return "", "", fmt.Errorf("checksum %q: %w", s, err)
			}
			return sum, a, nil
		}
	}
	return "", "", fmt.Errorf("checksum %q: %d hex digits matches no known type (md5 32, sha1 40, sha256 64, sha512 128); prefix it with the type, e.g. sha256:", s, len(s))
}

func checkHex(s string, n int) error {
	if len(s) != n {
		return fmt.Errorf("has %d hex digits, want %d", len(s), n)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("is not hex: %w", err)
	}
	return nil
}

// sum is a resolved expected checksum.
type sum struct {
	algo string // AlgoNone or a hash name
	hex  string
}

func (s sum) String() string {
	if s.algo == AlgoNone {
		return AlgoNone
	}
	return s.algo + ":" + s.hex
}

// resolver turns the request's checksum into an expected sum for one
// source, reading a checksum file at most once per Fetch.
type resolver struct {
	algo, val string
	dir       string
	sums      []sumLine // parsed checksum file, for AlgoFile
	loaded    bool
}

// forSource returns the expected sum for a source whose base name is base.
func (r *resolver) forSource(ctx context.Context, base string) (sum, error) {
	if r.algo != AlgoFile {
		return sum{r.algo, r.val}, nil
	}
	if !r.loaded {
		body, err := readChecksumFile(ctx, r.val, r.dir)
		if err != nil {
			return sum{}, fmt.Errorf("reading checksum file %s: %w", r.val, err)
		}
		r.sums, err = parseSumsFile(body)
		if err != nil {
			return sum{}, fmt.Errorf("checksum file %s: %w", r.val, err)
		}
		r.loaded = true
	}
	return findSum(r.sums, base, r.val)
}

// sumLine is one entry of a checksum file.
type sumLine struct {
	algo, hex, name string // name is "" for a file that holds only a sum
}

// parseSumsFile reads GNU ("HEX  name", "HEX *name") and BSD
// ("SHA256 (name) = HEX") checksum lines. Blank lines and comments are
// skipped; other unparseable lines are ignored too, because real SUMS files
// are sometimes PGP-signed (clear-signed text around the lines).
func parseSumsFile(body []byte) ([]sumLine, error) {
	var out []sumLine
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if l, ok := parseBSDLine(line); ok {
			out = append(out, l)
			continue
		}
		fields := strings.Fields(line)
		h := strings.ToLower(fields[0])
		algo := ""
		for a, n := range hexLen {
			if len(h) == n && checkHex(h, n) == nil {
				algo = a
			}
		}
		if algo == "" {
			continue
		}
		name := ""
		if len(fields) > 1 {
			// The name is everything after the sum and its separator,
			// so names with spaces survive.
			name = strings.TrimSpace(line[len(fields[0]):])
			name = strings.TrimPrefix(name, "*")
		}
		out = append(out, sumLine{algo: algo, hex: h, name: name})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no checksum lines found")
	}
	return out, nil
}

// parseBSDLine parses "SHA256 (name) = HEX".
func parseBSDLine(line string) (sumLine, bool) {
	typ, rest, ok := strings.Cut(line, " (")
	if !ok {
		return sumLine{}, false
	}
	i := strings.LastIndex(rest, ") = ")
	if i < 0 {
		return sumLine{}, false
	}
	algo := strings.ToLower(strings.ReplaceAll(typ, "-", ""))
	h := strings.ToLower(strings.TrimSpace(rest[i+len(") = "):]))
	n, known := hexLen[algo]
	if !known || checkHex(h, n) != nil {
		return sumLine{}, false
	}
	return sumLine{algo: algo, hex: h, name: rest[:i]}, true
}

// findSum picks the line for base. A file whose only entry has no name
// (a bare "HEX" .sha256 file) applies to any source.
func findSum(lines []sumLine, base, file string) (sum, error) {
	for _, l := range lines {
		if l.name != "" && path.Base(strings.TrimPrefix(l.name, "./")) == base {
			return sum{l.algo, l.hex}, nil
		}
	}
	if len(lines) == 1 && lines[0].name == "" {
		return sum{lines[0].algo, lines[0].hex}, nil
	}
	return sum{}, fmt.Errorf("checksum file %s has no entry for %q", file, base)
}

// readChecksumFile reads a checksum file from an http(s) URL, a file://
// URL or a local path (relative to dir). Checksum files are small; more
// than 16 MiB means the URL points at the wrong thing.
func readChecksumFile(ctx context.Context, loc, dir string) ([]byte, error) {
	const limit = 16 << 20
	src, err := parseSource(loc, dir)
	if err != nil {
		return nil, err
	}
	var rc io.ReadCloser
	if src.local != "" {
		rc, err = os.Open(src.local)
	} else {
		rc, err = httpGet(ctx, src.url)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("larger than %d bytes: not a checksum file", limit)
	}
	return b, nil
}
