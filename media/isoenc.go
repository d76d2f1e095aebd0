package media

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// On-disk encodings of ECMA-119 (ISO 9660), SUSP 1.12, Rock Ridge (RRIP
// 1.10, "RRIP_1991A") and Joliet. Field offsets are ECMA-119's, 0-based.

const blockSize = 2048

// both16 and both32 write ECMA-119 "both-byte orders" numbers (7.2.3,
// 7.3.3): little-endian followed by big-endian.
func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b[0:2], v)
	binary.BigEndian.PutUint16(b[2:4], v)
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:4], v)
	binary.BigEndian.PutUint32(b[4:8], v)
}

// recordTime is the 7-byte date of a directory record (9.1.5) and of
// Rock Ridge TF short form: years since 1900, month, day, hour, minute,
// second, offset from GMT in 15-minute units. Written in UTC.
func recordTime(t time.Time) []byte {
	t = t.UTC()
	y := t.Year() - 1900
	if y < 0 {
		return make([]byte, 7)
	}
	if y > 255 {
		y = 255
	}
	return []byte{byte(y), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

// volumeTime is the 17-byte date of a volume descriptor (8.4.26.1):
// "YYYYMMDDHHMMSScc" in digits plus the GMT offset byte.
func volumeTime(t time.Time) []byte {
	b := make([]byte, 17)
	if t.IsZero() {
		copy(b, "0000000000000000") // "not specified"
		return b
	}
	t = t.UTC()
	copy(b, fmt.Sprintf("%04d%02d%02d%02d%02d%02d%02d",
		t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/10_000_000))
	return b
}

// dirRecord encodes one directory record (9.1). name is the file
// identifier: 0x00 for ".", 0x01 for "..". The record is padded to an
// even length.
func dirRecord(name []byte, lba, length uint32, t time.Time, isDir bool, susp []byte) []byte {
	n := recordLen(len(name), len(susp))
	if n > 255 {
		// Callers size records with recordLen first; this is a bug guard.
		panic(fmt.Sprintf("media: directory record of %d bytes", n))
	}
	b := make([]byte, n)
	b[0] = byte(n)
	both32(b[2:10], lba)
	both32(b[10:18], length)
	copy(b[18:25], recordTime(t))
	if isDir {
		b[25] = 0x02
	}
	both16(b[28:32], 1) // volume sequence number
	b[32] = byte(len(name))
	copy(b[33:], name)
	copy(b[33+len(name)+padLen(len(name)):], susp)
	return b
}

// recordLen is the length of a directory record with a name of nameLen
// bytes and suspLen bytes of System Use entries.
func recordLen(nameLen, suspLen int) int {
	n := 33 + nameLen + padLen(nameLen) + suspLen
	return n + n%2
}

// padLen is the padding byte after an even-length file identifier.
func padLen(nameLen int) int { return 1 - nameLen%2 }

// SUSP / Rock Ridge entries.

func suspSP() []byte { return []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0} }

// suspPX records POSIX mode, link count, uid and gid (RRIP 1.10 form,
// 36 bytes). Owner and group are 0, as xorriso -r and genisoimage -r do:
// the builder's uid means nothing inside the guest.
func suspPX(mode, nlink uint32) []byte {
	b := make([]byte, 36)
	copy(b, "PX")
	b[2], b[3] = 36, 1
	both32(b[4:12], mode)
	both32(b[12:20], nlink)
	return b
}

// suspTF records modification, access and attribute-change times.
func suspTF(t time.Time) []byte {
	b := []byte{'T', 'F', 26, 1, 0x02 | 0x04 | 0x08}
	rt := recordTime(t)
	return append(append(append(b, rt...), rt...), rt...)
}

// suspNM is an alternate name entry; flags 1 means "continued in the next
// NM entry".
func suspNM(name string, flags byte) []byte {
	return append([]byte{'N', 'M', byte(5 + len(name)), 1, flags}, name...)
}

// suspNMs splits a name over as many NM entries as it needs (250 bytes
// each).
func suspNMs(name string) []byte {
	const max = 255 - 5
	var b []byte
	for len(name) > max {
		b = append(b, suspNM(name[:max], 1)...)
		name = name[max:]
	}
	return append(b, suspNM(name, 0)...)
}

const ceLen = 28

// suspCE points at a continuation area.
func suspCE(lba, off, length uint32) []byte {
	b := make([]byte, ceLen)
	copy(b, "CE")
	b[2], b[3] = ceLen, 1
	both32(b[4:12], lba)
	both32(b[12:20], off)
	both32(b[20:28], length)
	return b
}

// suspER identifies the Rock Ridge extension (RRIP 1.10 wording, as
// xorriso and Linux expect for "RRIP_1991A").
func suspER() []byte {
	const (
		id  = "RRIP_1991A"
		des = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
		src = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."
	)
	n := 8 + len(id) + len(des) + len(src)
	b := []byte{'E', 'R', byte(n), 1, byte(len(id)), byte(len(des)), byte(len(src)), 1}
	return append(append(append(b, id...), des...), src...)
}

// POSIX file type bits for PX.
const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
)

// pathTableRecord encodes one path table record (9.4); bigEndian selects
// the M table's byte order.
func pathTableRecord(ident []byte, lba uint32, parent uint16, bigEndian bool) []byte {
	b := make([]byte, 8+len(ident)+len(ident)%2)
	b[0] = byte(len(ident))
	if bigEndian {
		binary.BigEndian.PutUint32(b[2:6], lba)
		binary.BigEndian.PutUint16(b[6:8], parent)
	} else {
		binary.LittleEndian.PutUint32(b[2:6], lba)
		binary.LittleEndian.PutUint16(b[6:8], parent)
	}
	copy(b[8:], ident)
	return b
}

// volumeDescriptor holds what differs between the primary and the Joliet
// supplementary volume descriptor.
type volumeDescriptor struct {
	joliet       bool
	label        string
	blocks       uint32
	ptSize       uint32
	ptL, ptM     uint32
	rootRecord   []byte
	created      time.Time
	application  string
	dataPreparer string
}

// encode returns the 2048-byte descriptor (8.4 for the PVD, 8.5 plus the
// Joliet escape sequence for the SVD).
func (v volumeDescriptor) encode() []byte {
	b := make([]byte, blockSize)
	text := func(off, n int, s string) {
		if v.joliet {
			u := ucs2(s)
			for i := 0; i+1 < n; i += 2 {
				c := uint16(' ')
				if i/2 < len(u) {
					c = u[i/2]
				}
				binary.BigEndian.PutUint16(b[off+i:], c)
			}
			if n%2 == 1 {
				b[off+n-1] = 0
			}
			return
		}
		copy(b[off:off+n], s+strings.Repeat(" ", n))
	}
	b[0] = 1
	if v.joliet {
		b[0] = 2
	}
	copy(b[1:6], "CD001")
	b[6] = 1
	text(8, 32, "")       // system identifier
	text(40, 32, v.label) // volume identifier
	both32(b[80:88], v.blocks)
	if v.joliet {
		copy(b[88:91], "%/E") // UCS-2 level 3
	}
	both16(b[120:124], 1) // volume set size
	both16(b[124:128], 1) // volume sequence number
	both16(b[128:132], blockSize)
	both32(b[132:140], v.ptSize)
	binary.LittleEndian.PutUint32(b[140:144], v.ptL)
	binary.BigEndian.PutUint32(b[148:152], v.ptM)
	copy(b[156:190], v.rootRecord)
	text(190, 128, "") // volume set
	text(318, 128, "") // publisher
	text(446, 128, v.dataPreparer)
	text(574, 128, v.application)
	text(702, 37, "") // copyright file
	text(739, 37, "") // abstract file
	text(776, 37, "") // bibliographic file
	copy(b[813:830], volumeTime(v.created))
	copy(b[830:847], volumeTime(v.created))
	copy(b[847:864], volumeTime(time.Time{})) // expiration: none
	copy(b[864:881], volumeTime(time.Time{})) // effective: immediately
	b[881] = 1                                // file structure version
	return b
}

func terminatorDescriptor() []byte {
	b := make([]byte, blockSize)
	b[0] = 255
	copy(b[1:6], "CD001")
	b[6] = 1
	return b
}

// Names in the primary (plain ISO 9660) tree. Only readers that ignore
// both Rock Ridge and Joliet see them, so they follow the strictest form,
// level 1: 8.3 upper-case d-characters with ";1".

func dChars(s string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if b.Len() == max {
			break
		}
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// isoBaseExt splits name into the 8.3 base and extension.
func isoBaseExt(name string, isDir bool) (base, ext string) {
	if !isDir {
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			name, ext = name[:i], dChars(name[i+1:], 3)
		}
	}
	base = dChars(name, 8)
	if base == "" {
		base = "_"
	}
	return base, ext
}

// uniqueBase replaces the end of base with a counter until key(base) is
// not taken.
func uniqueBase(base string, max int, taken func(string) bool) string {
	if !taken(base) {
		return base
	}
	for n := 1; ; n++ {
		s := strconv.Itoa(n)
		b := base
		if len(b)+len(s) > max {
			b = b[:max-len(s)]
		}
		if !taken(b + s) {
			return b + s
		}
	}
}

// isoIdent is the file identifier bytes of the primary tree.
func isoIdent(base, ext string, isDir bool) []byte {
	if isDir {
		return []byte(base)
	}
	return []byte(base + "." + ext + ";1")
}

// Joliet names: UCS-2 big-endian, at most 64 characters (the Joliet
// specification's limit; Windows reads no more), without the characters
// Joliet forbids.

const jolietMaxChars = 64

func ucs2(s string) []uint16 { return utf16.Encode([]rune(s)) }

func jolietClean(name string) []uint16 {
	r := []rune(name)
	for i, c := range r {
		if c < 0x20 || strings.ContainsRune(`*/:;?\`, c) {
			r[i] = '_'
		}
	}
	return utf16.Encode(r)
}

// jolietFit shortens u to at most jolietMaxChars, keeping the extension
// (when short) and the suffix tag, never splitting a surrogate pair.
func jolietFit(u []uint16, tag string) []uint16 {
	t := ucs2(tag)
	var ext []uint16
	for i := len(u) - 1; i > 0; i-- {
		if u[i] == '.' {
			if len(u)-i <= 16 {
				ext = u[i:]
				u = u[:i]
			}
			break
		}
	}
	room := jolietMaxChars - len(ext) - len(t)
	if len(u) > room {
		u = u[:room]
		if len(u) > 0 && utf16.IsSurrogate(rune(u[len(u)-1])) && u[len(u)-1] < 0xDC00 {
			u = u[:len(u)-1] // drop a dangling high surrogate
		}
	}
	out := append(append(append([]uint16{}, u...), t...), ext...)
	return out
}

func ucs2Bytes(u []uint16) []byte {
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}
