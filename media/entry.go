// Package media builds and reads the CD images a build attaches or boots
// from: the seed CD of Packer's cd_files / cd_content / cd_label (cloud-init
// NoCloud "cidata", Ubuntu autoinstall, Windows Autounattend.xml), written
// in pure Go, and files read out of an installer ISO (kernel and initrd for
// direct kernel boot).
//
// Why kiln writes ISO 9660 itself instead of using go-diskfs's writer:
// go-diskfs v1.9.4 (which kiln uses to read ISOs) writes Joliet
// subdirectory records that point at the primary tree's extents (so
// Windows sees garbage in every subdirectory), overflows Joliet records for
// names longer than 64 characters, loses or corrupts Rock Ridge names
// longer than ~140 bytes in the root directory, and leaves the image
// shorter than the volume size it declares. The format needed for a seed
// CD is small and fixed (see isowrite.go), so kiln writes it directly and
// tests it against xorriso, isoinfo and blkid.
package media

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Entry is one file or directory to put on an ISO.
type Entry struct {
	// Path is the slash-separated path inside the ISO, relative to its
	// root, e.g. "user-data" or "dir/file". Parent directories are created
	// as needed (mode 0755).
	Path string
	// Source is a local file whose content is copied. It is read when the
	// ISO is written, not before.
	Source string
	// Content is the file's content when Source is empty. A nil Content
	// with an empty Source is an empty file.
	Content []byte
	// Mode holds the permission bits (and os.ModeSetuid, os.ModeSetgid,
	// os.ModeSticky) recorded in Rock Ridge. os.ModeDir makes the entry a
	// directory, which lets empty directories exist. Zero permission bits
	// mean the default: the source file's bits for Source, 0644 for
	// Content, 0755 for directories.
	Mode os.FileMode
}

// origin describes where an entry comes from, for error messages.
func (e Entry) origin() string {
	switch {
	case e.Source != "":
		return e.Source
	case e.Mode.IsDir():
		return "directory entry " + e.Path
	default:
		return "inline content for " + e.Path
	}
}

// Entries turns Packer's cd_files and cd_content into entries, with
// Packer's semantics (packer-plugin-sdk multistep/commonsteps CDConfig and
// StepCreateCD):
//
//   - An item of cdFiles that contains any of "*?[" is a glob
//     (filepath.Glob); a glob that matches nothing adds nothing, as in
//     Packer. Any other item must exist.
//   - A file goes to the root of the ISO under its base name.
//   - A directory goes to the root under its base name, with its whole
//     tree below it ("http/seed" gives "seed/user-data"). Written with a
//     trailing slash or "/." ("http/seed/") its contents go to the root
//     instead, as Packer's path splitting does; the glob "http/seed/*" has
//     the same effect.
//   - Symbolic links are followed: the target's content is stored where
//     the link was. A link to a directory inside a tree is an error (Packer
//     fails on it too); a link to a directory named in cdFiles is followed.
//   - cdContent maps an ISO path to the file's content (mode 0644).
//
// Relative items are relative to baseDir (Packer uses the working
// directory). Unlike Packer, where a later file silently overwrites an
// earlier one, two sources for the same ISO path are an error naming both.
// Entries are returned in a stable order: cdFiles order, then cdContent
// sorted by path.
func Entries(baseDir string, cdFiles []string, cdContent map[string]string) ([]Entry, error) {
	c := collector{from: map[string]string{}, dirs: map[string]bool{}}
	for _, item := range cdFiles {
		if err := c.addItem(baseDir, item); err != nil {
			return nil, err
		}
	}
	type content struct{ key, path string }
	var contents []content
	for k := range cdContent {
		p, err := cleanISOPath(path.Clean(strings.TrimLeft(k, "/")))
		if err != nil {
			return nil, fmt.Errorf("cd_content key %q: %w", k, err)
		}
		contents = append(contents, content{k, p})
	}
	sort.Slice(contents, func(i, j int) bool {
		a, b := contents[i], contents[j]
		return a.path < b.path || (a.path == b.path && a.key < b.key)
	})
	for _, ct := range contents {
		e := Entry{Path: ct.path, Content: []byte(cdContent[ct.key]), Mode: 0o644}
		if err := c.add(e, fmt.Sprintf("cd_content[%q]", ct.key)); err != nil {
			return nil, err
		}
	}
	return c.entries, nil
}

// collector accumulates entries and rejects two sources for one path.
type collector struct {
	entries []Entry
	from    map[string]string // ISO path -> description of its source
	dirs    map[string]bool   // ISO paths that are directories
}

func (c *collector) add(e Entry, desc string) error {
	// Every parent must be (or become) a directory, never a file.
	for p := path.Dir(e.Path); p != "."; p = path.Dir(p) {
		if prev, ok := c.from[p]; ok && !c.dirs[p] {
			return fmt.Errorf("cd_files/cd_content: %q is a file from %s, but %s needs it to be a directory", p, prev, desc)
		}
		c.dirs[p] = true
		if _, ok := c.from[p]; !ok {
			c.from[p] = desc
		}
	}
	if prev, ok := c.from[e.Path]; ok {
		if e.Mode.IsDir() && c.dirs[e.Path] {
			return nil // two trees sharing a directory merge, as in Packer
		}
		return fmt.Errorf("cd_files/cd_content: %q comes from both %s and %s", e.Path, prev, desc)
	}
	c.from[e.Path] = desc
	if e.Mode.IsDir() {
		c.dirs[e.Path] = true
	}
	c.entries = append(c.entries, e)
	return nil
}

func (c *collector) addItem(baseDir, item string) error {
	if item == "" {
		return errors.New("cd_files: empty path")
	}
	full := item
	if !filepath.IsAbs(full) {
		full = filepath.Join(baseDir, item)
	}
	if strings.ContainsAny(item, "*?[") {
		matches, err := filepath.Glob(full)
		if err != nil {
			return fmt.Errorf("cd_files: bad pattern %q: %w", item, err)
		}
		for _, m := range matches {
			if err := c.addPath(m, false); err != nil {
				return err
			}
		}
		return nil
	}
	// Packer splits the item as written: "dir/" and "dir/." leave an empty
	// or "." base name, so the directory's contents land at the root.
	last := item[strings.LastIndexAny(item, `/`+string(filepath.Separator))+1:]
	return c.addPath(full, last == "" || last == ".")
}

// addPath adds one file or directory tree found on disk.
func (c *collector) addPath(full string, contentsAtRoot bool) error {
	st, err := os.Stat(full)
	if err != nil {
		return fmt.Errorf("cd_files: %w", err)
	}
	abs, err := filepath.Abs(full)
	if err != nil {
		return fmt.Errorf("cd_files: %w", err)
	}
	if !st.IsDir() {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("cd_files: %s is not a regular file or directory", full)
		}
		return c.add(Entry{Path: filepath.Base(abs), Source: abs, Mode: modeOf(st)}, abs)
	}
	prefix := filepath.Base(abs)
	if contentsAtRoot {
		prefix = ""
	}
	// A link named in cd_files to a directory is followed (WalkDir would
	// not descend into it); the tree keeps the link's name.
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("cd_files: %w", err)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("cd_files: %w", err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return fmt.Errorf("cd_files: %w", err)
		}
		isoPath := path.Join(prefix, filepath.ToSlash(rel))
		if isoPath == "." || isoPath == "" {
			return nil // the root itself
		}
		if _, err := cleanISOPath(isoPath); err != nil {
			return fmt.Errorf("cd_files: %s: %w", p, err)
		}
		st, err := os.Stat(p) // follows symbolic links
		if err != nil {
			return fmt.Errorf("cd_files: %w", err)
		}
		switch {
		case d.IsDir():
			return c.add(Entry{Path: isoPath, Mode: os.ModeDir | modeOf(st)}, p)
		case st.IsDir():
			return fmt.Errorf("cd_files: %s is a symbolic link to a directory; link targets are copied only for files", p)
		case !st.Mode().IsRegular():
			return fmt.Errorf("cd_files: %s is not a regular file or directory", p)
		}
		return c.add(Entry{Path: isoPath, Source: p, Mode: modeOf(st)}, p)
	})
}

// modeOf keeps the bits Rock Ridge records for a source file.
func modeOf(st os.FileInfo) os.FileMode {
	return st.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
}

// maxNameBytes is the longest Rock Ridge name kiln writes: Linux's
// NAME_MAX.
const maxNameBytes = 255

// cleanISOPath checks that p is a clean, relative, slash-separated path
// with names a Linux guest can represent, and returns it.
func cleanISOPath(p string) (string, error) {
	if p == "" || p == "." {
		return "", errors.New("empty path")
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q must be relative to the ISO root", p)
	}
	if path.Clean(p) != p {
		return "", fmt.Errorf("path %q is not clean (want %q)", p, path.Clean(p))
	}
	for _, part := range strings.Split(p, "/") {
		switch {
		case part == "..":
			return "", fmt.Errorf("path %q leaves the ISO root", p)
		case len(part) > maxNameBytes:
			return "", fmt.Errorf("name %.40q... in %q is %d bytes; the limit is %d", part, p, len(part), maxNameBytes)
		case !utf8.ValidString(part):
			return "", fmt.Errorf("name in %q is not valid UTF-8", p)
		case strings.ContainsRune(part, 0):
			return "", fmt.Errorf("name in %q contains a NUL byte", p)
		}
	}
	return p, nil
}
