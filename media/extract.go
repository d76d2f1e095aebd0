package media

import (
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/kilnbuild/kiln/internal/fsx"
)

// ExtractFromISO copies files out of an ISO 9660 image: files maps a path
// inside the ISO ("casper/vmlinuz", a leading "/" is allowed) to a local
// destination, each written atomically. Names are matched exactly first
// (Rock Ridge or Joliet names, as the image has them), then without regard
// to case, so "CASPER/VMLINUZ" finds casper/vmlinuz and plain ISO 9660
// images need no ";1". A path that is missing is an error listing what its
// nearest existing directory holds.
//
// Reading uses go-diskfs, which reads hybrid (isohybrid MBR/GPT) installer
// ISOs as well as plain ones. Files larger than one extent (4 GiB) are not
// supported.
func ExtractFromISO(ctx context.Context, isoPath string, files map[string]string) error {
	// go-diskfs cannot be interrupted, and some malformed images make it
	// loop (a Rock Ridge continuation area that points at itself): run it
	// aside so that cancelling the build still returns at once.
	done := make(chan error, 1)
	go func() { done <- extractAll(ctx, isoPath, files) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("extracting from %s: %w", isoPath, ctx.Err())
	}
}

func extractAll(ctx context.Context, isoPath string, files map[string]string) (err error) {
	// go-diskfs parses what it is given; a malformed image must fail the
	// build with a message, not crash kiln.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading ISO %s: malformed image: %v", isoPath, r)
		}
	}()
	f, err := os.Open(isoPath)
	if err != nil {
		return fmt.Errorf("reading ISO: %w", err)
	}
	defer f.Close()
	fsys, err := iso9660.Read(file.New(f, true), 0, 0, blockSize)
	if err != nil {
		return fmt.Errorf("reading ISO %s: %w", isoPath, err)
	}
	srcs := make([]string, 0, len(files))
	for p := range files {
		srcs = append(srcs, p)
	}
	sort.Strings(srcs)
	for _, p := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := extractOne(ctx, fsys, p, files[p]); err != nil {
			return fmt.Errorf("extracting %s from %s: %w", p, isoPath, err)
		}
	}
	return nil
}

func extractOne(ctx context.Context, fsys *iso9660.FileSystem, isoPath, dst string) (err error) {
	want := path.Clean(strings.TrimLeft(isoPath, "/"))
	if want == "." || strings.HasPrefix(want, "../") || want == ".." {
		return fmt.Errorf("not a file path")
	}
	// Resolve each component against what the directory really holds, so
	// case differences and go-diskfs's own name handling do not matter.
	dir := "."
	parts := strings.Split(want, "/")
	for i, part := range parts {
		entries, err := fsys.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("listing %s: %w", displayDir(dir), err)
		}
		var exact, folded []os.DirEntry
		for _, e := range entries {
			switch {
			case e.Name() == part:
				exact = append(exact, e)
			case strings.EqualFold(e.Name(), part):
				folded = append(folded, e)
			}
		}
		match := exact
		if len(match) == 0 {
			match = folded
		}
		switch {
		case len(match) == 0:
			return fmt.Errorf("no %q in %s, which holds: %s", part, displayDir(dir), listing(entries))
		case len(match) > 1:
			return fmt.Errorf("%q is ambiguous in %s (%s)", part, displayDir(dir), listing(match))
		}
		last := i == len(parts)-1
		if !last && !match[0].IsDir() {
			return fmt.Errorf("%s is a file, not a directory", path.Join(dir, match[0].Name()))
		}
		if last && match[0].IsDir() {
			return fmt.Errorf("%s is a directory, which holds: %s", path.Join(dir, match[0].Name()), dirListing(fsys, path.Join(dir, match[0].Name())))
		}
		dir = path.Join(dir, match[0].Name())
	}

	in, err := fsys.Open(dir)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := fsx.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Abort()
		}
	}()
	// An initrd is tens of megabytes: stop at once when the build is cancelled.
	n, err := fsx.CopyContext(ctx, out, in, nil)
	if err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	if n != st.Size() {
		return fmt.Errorf("copied %d bytes of %d", n, st.Size())
	}
	return out.Commit()
}

func displayDir(dir string) string {
	if dir == "." {
		return "the ISO root"
	}
	return dir
}

// listing names entries the way ls -F does: directories end in "/".
func listing(entries []os.DirEntry) string {
	if len(entries) == 0 {
		return "nothing"
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func dirListing(fsys *iso9660.FileSystem, dir string) string {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	return listing(entries)
}
