package media

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/kilnbuild/kiln/internal/fsx"
)

// Image layout written by WriteISO, in 2048-byte blocks:
//
//	0-15   system area (zeros)
//	16     primary volume descriptor (ISO 9660 names, Rock Ridge entries)
//	17     Joliet supplementary volume descriptor
//	18     volume descriptor set terminator
//	19-    path tables: primary L, primary M, Joliet L, Joliet M
//	       primary directories, breadth-first
//	       Rock Ridge continuation areas (the ER entry, names too long
//	       to fit in a 255-byte directory record)
//	       Joliet directories, breadth-first
//	       file data, one contiguous extent per file
//
// Files share data extents between the two trees. The image ends exactly
// at the volume size the descriptors declare.

// maxFileSize is the largest file one ISO 9660 extent can hold. Larger
// files would need multi-extent records, which kiln does not write.
const maxFileSize = math.MaxUint32

// WriteISO writes an ISO 9660 image with Rock Ridge and Joliet to dst,
// atomically (a temporary file beside dst, renamed into place). label is
// the volume identifier, written as given (at most 32 ASCII characters;
// "cidata" for cloud-init NoCloud); the caller applies Packer's default
// "packer". Entries are validated first: clean relative paths, no path
// given twice, no file where a directory is needed.
//
// Rock Ridge carries the exact names and modes (what Linux mounts show,
// and what cloud-init and Ubuntu autoinstall read); Joliet carries names
// of up to 64 characters for Windows (longer ones are shortened there);
// the plain ISO 9660 names are 8.3.
func WriteISO(ctx context.Context, dst string, label string, entries []Entry) (err error) {
	if err := checkLabel(label); err != nil {
		return fmt.Errorf("writing ISO %s: %w", dst, err)
	}
	now := time.Now()
	root, err := buildTree(entries, now)
	if err != nil {
		return fmt.Errorf("writing ISO %s: %w", dst, err)
	}
	img, err := layout(root, label, now)
	if err != nil {
		return fmt.Errorf("writing ISO %s: %w", dst, err)
	}

	out, err := fsx.Create(dst)
	if err != nil {
		return fmt.Errorf("writing ISO %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			out.Abort()
		}
	}()
	w := bufio.NewWriterSize(out, 1<<20)
	if _, err := w.Write(img.meta); err != nil {
		return fmt.Errorf("writing ISO %s: %w", dst, err)
	}
	for _, f := range img.files {
		if err := writeFileData(ctx, w, f); err != nil {
			return fmt.Errorf("writing ISO %s: %w", dst, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing ISO %s: %w", dst, err)
	}
	return out.Commit()
}

func checkLabel(label string) error {
	switch {
	case label == "":
		return errors.New("empty volume label")
	case len(label) > 32:
		return fmt.Errorf("volume label %q is %d characters; ISO 9660 allows 32", label, len(label))
	}
	for _, r := range label {
		if r < 0x20 || r > 0x7e {
			return fmt.Errorf("volume label %q: only printable ASCII is allowed", label)
		}
	}
	return nil
}

// image is a laid-out ISO: the metadata blocks, fully encoded, and the
// files whose data follows them in order.
type image struct {
	meta  []byte
	files []*node
}

// pxtfLen is the length of the PX and TF entries every primary record
// carries.
const pxtfLen = 36 + 26

// childSUSPLen is the length of the System Use entries of n's record in
// its parent directory. When PX+TF+NM would make the record longer than
// 255 bytes, it moves the NM entries to n.ce, a continuation area.
func (n *node) childSUSPLen() int {
	if recordLen(len(n.ident), pxtfLen+5+len(n.name)) <= 255 && len(n.name) <= 250 {
		return pxtfLen + 5 + len(n.name)
	}
	n.ce = suspNMs(n.name)
	return pxtfLen + ceLen
}

func (n *node) childSUSP() []byte {
	s := append(suspPX(n.posixMode(), n.nlink()), suspTF(n.mtime)...)
	if n.ce != nil {
		return append(s, suspCE(n.ceLBA, n.ceOff, uint32(len(n.ce)))...)
	}
	return append(s, suspNM(n.name, 0)...)
}

// rootSelfSUSP is the root "." record's entries: SP announces SUSP, and
// the ER identifying Rock Ridge sits in a continuation area.
func (n *node) rootSelfSUSP() []byte {
	s := append(suspSP(), suspPX(n.posixMode(), n.nlink())...)
	s = append(s, suspTF(n.mtime)...)
	return append(s, suspCE(n.ceLBA, n.ceOff, uint32(len(n.ce)))...)
}

const rootSelfSUSPLen = 7 + pxtfLen + ceLen

// dirExtentLen sums record lengths into blocks: a record never crosses a
// block boundary.
func dirExtentLen(recLens []int) uint32 {
	off := 0
	for _, l := range recLens {
		if off%blockSize+l > blockSize {
			off += blockSize - off%blockSize
		}
		off += l
	}
	return uint32(blocksFor(int64(off))) * blockSize
}

func blocksFor(n int64) int64 { return (n + blockSize - 1) / blockSize }

func layout(root *node, label string, now time.Time) (*image, error) {
	assignNames(root)
	dirs := breadthFirst(root, func(n *node) []*node { return n.kids })
	jdirs := breadthFirst(root, func(n *node) []*node { return n.jkids })
	if len(dirs) > math.MaxUint16 {
		return nil, fmt.Errorf("%d directories; a path table numbers at most %d", len(dirs), math.MaxUint16)
	}
	for i, d := range dirs {
		d.ptNum = uint16(i + 1)
	}
	for i, d := range jdirs {
		d.jptNum = uint16(i + 1)
	}

	// Sizes first: every length is known before any block number.
	root.ce = suspER()
	var ptSize, jptSize int
	for _, d := range dirs {
		ptSize += 8 + len(ptIdent(d)) + len(ptIdent(d))%2
		jptSize += 8 + len(jptIdent(d)) + len(jptIdent(d))%2
		selfSUSP := pxtfLen
		if d == root {
			selfSUSP = rootSelfSUSPLen
		}
		lens := []int{recordLen(1, selfSUSP), recordLen(1, pxtfLen)}
		jlens := []int{recordLen(1, 0), recordLen(1, 0)}
		for _, k := range d.kids {
			lens = append(lens, recordLen(len(k.ident), k.childSUSPLen()))
			jlens = append(jlens, recordLen(len(k.jident), 0))
		}
		d.length = dirExtentLen(lens)
		d.jlength = dirExtentLen(jlens)
	}

	// Block numbers.
	lba := uint32(19)
	next := func(n int64) uint32 { at := lba; lba += uint32(blocksFor(n)); return at }
	ptL, ptM := next(int64(ptSize)), next(int64(ptSize))
	jptL, jptM := next(int64(jptSize)), next(int64(jptSize))
	for _, d := range dirs {
		d.lba = next(int64(d.length))
	}
	// Continuation areas, packed; one never crosses a block boundary.
	ceStart, ceOff := lba, uint32(0)
	for _, d := range dirs {
		for _, n := range append([]*node{d}, d.kids...) {
			if n.ce == nil || (n == d && d != root) {
				continue
			}
			if ceOff%blockSize+uint32(len(n.ce)) > blockSize {
				ceOff += blockSize - ceOff%blockSize
			}
			n.ceLBA, n.ceOff = ceStart+ceOff/blockSize, ceOff%blockSize
			ceOff += uint32(len(n.ce))
		}
	}
	lba += uint32(blocksFor(int64(ceOff)))
	for _, d := range jdirs {
		d.jlba = next(int64(d.jlength))
	}
	metaBlocks := lba
	var files []*node
	for _, d := range dirs {
		for _, k := range d.kids {
			if !k.dir {
				files = append(files, k)
				if k.size > 0 {
					k.lba = next(k.size)
				}
			}
		}
	}
	total := lba

	// Encode.
	meta := make([]byte, int(metaBlocks)*blockSize)
	put := func(lba, off uint32, b []byte) { copy(meta[int(lba)*blockSize+int(off):], b) }
	rootRec := dirRecord([]byte{0}, root.lba, root.length, root.mtime, true, nil)
	jrootRec := dirRecord([]byte{0}, root.jlba, root.jlength, root.mtime, true, nil)
	put(16, 0, volumeDescriptor{label: label, blocks: total, ptSize: uint32(ptSize), ptL: ptL, ptM: ptM,
		rootRecord: rootRec, created: now, application: "KILN", dataPreparer: "KILN"}.encode())
	put(17, 0, volumeDescriptor{joliet: true, label: label, blocks: total, ptSize: uint32(jptSize), ptL: jptL, ptM: jptM,
		rootRecord: jrootRec, created: now, application: "KILN", dataPreparer: "KILN"}.encode())
	put(18, 0, terminatorDescriptor())

	var pl, pm, jl, jm []byte
	for _, d := range dirs {
		pl = append(pl, pathTableRecord(ptIdent(d), d.lba, parentOf(d).ptNum, false)...)
		pm = append(pm, pathTableRecord(ptIdent(d), d.lba, parentOf(d).ptNum, true)...)
	}
	for _, d := range jdirs {
		jl = append(jl, pathTableRecord(jptIdent(d), d.jlba, parentOf(d).jptNum, false)...)
		jm = append(jm, pathTableRecord(jptIdent(d), d.jlba, parentOf(d).jptNum, true)...)
	}
	put(ptL, 0, pl)
	put(ptM, 0, pm)
	put(jptL, 0, jl)
	put(jptM, 0, jm)

	for _, d := range dirs {
		p := parentOf(d)
		selfSUSP := append(suspPX(d.posixMode(), d.nlink()), suspTF(d.mtime)...)
		if d == root {
			selfSUSP = d.rootSelfSUSP()
		}
		recs := [][]byte{
			dirRecord([]byte{0}, d.lba, d.length, d.mtime, true, selfSUSP),
			dirRecord([]byte{1}, p.lba, p.length, p.mtime, true, append(suspPX(p.posixMode(), p.nlink()), suspTF(p.mtime)...)),
		}
		jrecs := [][]byte{
			dirRecord([]byte{0}, d.jlba, d.jlength, d.mtime, true, nil),
			dirRecord([]byte{1}, p.jlba, p.jlength, p.mtime, true, nil),
		}
		for _, k := range d.kids {
			recs = append(recs, dirRecord(k.ident, k.lba, k.extentLen(), k.mtime, k.dir, k.childSUSP()))
		}
		for _, k := range d.jkids {
			lba, length := k.lba, k.extentLen()
			if k.dir {
				lba, length = k.jlba, k.jlength
			}
			jrecs = append(jrecs, dirRecord(k.jident, lba, length, k.mtime, k.dir, nil))
		}
		putRecords(meta, d.lba, recs)
		putRecords(meta, d.jlba, jrecs)
		for _, n := range append([]*node{d}, d.kids...) {
			if n.ce != nil && (n != d || d == root) {
				put(n.ceLBA, n.ceOff, n.ce)
			}
		}
	}
	return &image{meta: meta, files: files}, nil
}

func (n *node) extentLen() uint32 {
	if n.dir {
		return n.length
	}
	return uint32(n.size)
}

func parentOf(d *node) *node {
	if d.parent == nil {
		return d
	}
	return d.parent
}

func ptIdent(d *node) []byte {
	if d.parent == nil {
		return []byte{0}
	}
	return d.ident
}

func jptIdent(d *node) []byte {
	if d.parent == nil {
		return []byte{0}
	}
	return d.jident
}

// putRecords writes directory records from block lba on, moving to the
// next block when a record would cross a boundary.
func putRecords(meta []byte, lba uint32, recs [][]byte) {
	off := int(lba) * blockSize
	for _, r := range recs {
		if off%blockSize+len(r) > blockSize {
			off += blockSize - off%blockSize
		}
		copy(meta[off:], r)
		off += len(r)
	}
}

// writeFileData copies one file's data and pads it to a block boundary.
// A source that changed size since the layout fails the write: the
// extents are already fixed.
func writeFileData(ctx context.Context, w io.Writer, f *node) error {
	if f.size == 0 {
		return nil
	}
	var r io.Reader = bytes.NewReader(f.content)
	if f.src != "" {
		in, err := os.Open(f.src)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path(), err)
		}
		defer in.Close()
		r = in
	}
	buf := make([]byte, 1<<20)
	var done int64
	for done < f.size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), f.size-done)])
		if _, werr := w.Write(buf[:n]); werr != nil {
			return werr
		}
		done += int64(n)
		if err != nil {
			return fmt.Errorf("%s: %s changed size while being written (%d of %d bytes): %w", f.path(), f.src, done, f.size, err)
		}
	}
	if f.src != "" {
		if n, _ := r.Read(buf[:1]); n > 0 {
			return fmt.Errorf("%s: %s grew while being written (expected %d bytes)", f.path(), f.src, f.size)
		}
	}
	_, err := w.Write(make([]byte, blocksFor(f.size)*blockSize-f.size))
	return err
}
