package media

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// node is a file or directory of the image being built.
type node struct {
	name    string // Rock Ridge name: the real one
	dir     bool
	mode    os.FileMode
	mtime   time.Time
	size    int64
	src     string
	content []byte
	origin  string
	implied bool // directory created only as a parent of another entry
	parent  *node
	byName  map[string]*node

	kids  []*node // primary tree order
	jkids []*node // Joliet tree order

	isoBase, isoExt string
	ident           []byte // primary file identifier
	jident          []byte // Joliet file identifier (UCS-2)

	lba, length   uint32 // file data, or primary directory extent
	jlba, jlength uint32 // Joliet directory extent
	ptNum, jptNum uint16 // directory numbers in the two path tables

	// ce is the Rock Ridge continuation area of this node's record (its
	// record in the parent, or the root's "." record), stored at
	// ceLBA/ceOff.
	ce           []byte
	ceLBA, ceOff uint32
}

// buildTree checks the entries and arranges them as a tree. Source files
// are stat'ed here: their sizes fix the layout.
func buildTree(entries []Entry, now time.Time) (*node, error) {
	root := &node{dir: true, mode: 0o755, mtime: now, byName: map[string]*node{}, origin: "the ISO root"}
	for _, e := range entries {
		if _, err := cleanISOPath(e.Path); err != nil {
			return nil, fmt.Errorf("entry from %s: %w", e.origin(), err)
		}
		if e.Mode&^(os.ModeDir|os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			return nil, fmt.Errorf("entry %s: unsupported mode %v", e.Path, e.Mode)
		}
		parts := strings.Split(e.Path, "/")
		cur := root
		for _, part := range parts[:len(parts)-1] {
			next := cur.byName[part]
			if next == nil {
				next = cur.add(&node{name: part, dir: true, mode: 0o755, mtime: now, implied: true, origin: e.origin(), byName: map[string]*node{}})
			} else if !next.dir {
				return nil, fmt.Errorf("%s is a file (from %s), but %s needs it to be a directory", next.path(), next.origin, e.origin())
			}
			cur = next
		}
		name := parts[len(parts)-1]
		prev := cur.byName[name]
		if e.Mode.IsDir() {
			if e.Source != "" || e.Content != nil {
				return nil, fmt.Errorf("directory entry %s has a source or content", e.Path)
			}
			perm := e.Mode &^ os.ModeDir
			if perm&os.ModePerm == 0 {
				perm |= 0o755
			}
			switch {
			case prev == nil:
				cur.add(&node{name: name, dir: true, mode: perm, mtime: now, origin: e.origin(), byName: map[string]*node{}})
			case !prev.dir:
				return nil, fmt.Errorf("%s comes from both %s and %s", e.Path, prev.origin, e.origin())
			case prev.implied:
				prev.mode, prev.implied, prev.origin = perm, false, e.origin()
			}
			continue
		}
		if prev != nil {
			return nil, fmt.Errorf("%s comes from both %s and %s", e.Path, prev.origin, e.origin())
		}
		n := &node{name: name, mode: e.Mode, mtime: now, origin: e.origin()}
		switch {
		case e.Source != "" && e.Content != nil:
			return nil, fmt.Errorf("entry %s has both a source (%s) and content", e.Path, e.Source)
		case e.Source != "":
			st, err := os.Stat(e.Source)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", e.Path, err)
			}
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("entry %s: %s is not a regular file", e.Path, e.Source)
			}
			n.src, n.size, n.mtime = e.Source, st.Size(), st.ModTime()
			if n.mode&os.ModePerm == 0 {
				n.mode |= modeOf(st)
			}
		default:
			n.content, n.size = e.Content, int64(len(e.Content))
			if n.mode&os.ModePerm == 0 {
				n.mode |= 0o644
			}
		}
		if n.size > maxFileSize {
			return nil, fmt.Errorf("entry %s: %d bytes is larger than the 4 GiB an ISO 9660 file extent can hold", e.Path, n.size)
		}
		cur.add(n)
	}
	return root, nil
}

func (n *node) add(kid *node) *node {
	kid.parent = n
	n.byName[kid.name] = kid
	n.kids = append(n.kids, kid)
	return kid
}

func (n *node) path() string {
	if n.parent == nil {
		return "/"
	}
	if n.parent.parent == nil {
		return n.name
	}
	return n.parent.path() + "/" + n.name
}

// posixMode is the PX mode of n.
func (n *node) posixMode() uint32 {
	m := uint32(n.mode.Perm())
	if n.mode&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if n.mode&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if n.mode&os.ModeSticky != 0 {
		m |= 0o1000
	}
	if n.dir {
		return m | sIFDIR
	}
	return m | sIFREG
}

func (n *node) nlink() uint32 {
	if !n.dir {
		return 1
	}
	links := uint32(2)
	for _, k := range n.kids {
		if k.dir {
			links++
		}
	}
	return links
}

// assignNames gives every child of d its primary and Joliet identifiers,
// unique within d, and sorts the two child lists as each tree requires.
func assignNames(d *node) {
	// Deterministic: which of two clashing names gets the counter must
	// not depend on entry order.
	sort.Slice(d.kids, func(i, j int) bool { return d.kids[i].name < d.kids[j].name })
	taken := map[string]bool{}
	jtaken := map[string]bool{}
	for _, k := range d.kids {
		base, ext := isoBaseExt(k.name, k.dir)
		base = uniqueBase(base, 8, func(b string) bool { return taken[string(isoIdent(b, ext, k.dir))] })
		k.isoBase, k.isoExt, k.ident = base, ext, isoIdent(base, ext, k.dir)
		taken[string(k.ident)] = true

		clean := jolietClean(k.name)
		key := func(u []uint16) string { return strings.ToLower(string(utf16.Decode(u))) }
		j := clean
		if len(j) > jolietMaxChars {
			j = jolietFit(clean, "")
		}
		// Windows compares Joliet names without case.
		for n := 1; jtaken[key(j)]; n++ {
			j = jolietFit(clean, fmt.Sprintf("~%d", n))
		}
		jtaken[key(j)] = true
		k.jident = ucs2Bytes(j)
	}
	sort.SliceStable(d.kids, func(i, j int) bool {
		a, b := d.kids[i], d.kids[j]
		if a.isoBase != b.isoBase {
			return a.isoBase < b.isoBase
		}
		return a.isoExt < b.isoExt
	})
	d.jkids = append([]*node(nil), d.kids...)
	sort.Slice(d.jkids, func(i, j int) bool { return bytes.Compare(d.jkids[i].jident, d.jkids[j].jident) < 0 })
	for _, k := range d.kids {
		if k.dir {
			assignNames(k)
		}
	}
}

// breadthFirst lists the directories of the tree in path table order:
// by level, then by parent, then by identifier (ECMA-119 9.4). kids picks
// the tree's child order.
func breadthFirst(root *node, kids func(*node) []*node) []*node {
	dirs := []*node{root}
	for i := 0; i < len(dirs); i++ {
		for _, k := range kids(dirs[i]) {
			if k.dir {
				dirs = append(dirs, k)
			}
		}
	}
	return dirs
}
