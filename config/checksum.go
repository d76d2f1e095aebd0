package config

import (
	"fmt"
	"strings"
)

// checksumHexLen maps Packer's checksum types to their hex digest length.
var checksumHexLen = map[string]int{"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}

// checkChecksumSyntax validates an iso_checksum other than "none":
// "TYPE:HEX" with TYPE md5, sha1, sha256 or sha512; bare HEX whose type
// is guessed from its length; or "file:" followed by the URL or path of a
// checksum file (Packer's, that is go-getter's, syntax). The file itself
// is fetched at build time.
func checkChecksumSyntax(s string) error {
	if rest, ok := strings.CutPrefix(s, "file:"); ok {
		if rest == "" {
			return fmt.Errorf(`"file:" must be followed by the URL or path of a checksum file, e.g. "file:https://example.org/SHA256SUMS"`)
		}
		return nil
	}
	typ, digest, hasType := strings.Cut(s, ":")
	if !hasType {
		digest = s
	}
	if !isHex(digest) {
		return fmt.Errorf("%q is not a checksum: write \"sha256:<hex digest>\" (or md5, sha1, sha512), \"file:<checksum file URL>\", or \"none\"", s)
	}
	if !hasType {
		for _, n := range checksumHexLen {
			if len(digest) == n {
				return nil
			}
		}
		return fmt.Errorf("cannot guess the checksum type of a %d-digit digest: prefix it with its type, e.g. \"sha256:%s\".", len(digest), digest)
	}
	want, ok := checksumHexLen[strings.ToLower(typ)]
	if !ok {
		return fmt.Errorf("unknown checksum type %q: use md5, sha1, sha256 or sha512", typ)
	}
	if len(digest) != want {
		return fmt.Errorf("a %s digest has %d hex digits, this one has %d: check that the type matches the digest.", typ, want, len(digest))
	}
	return nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
