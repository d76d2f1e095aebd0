package fsx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	// holeBlock is the granularity at which zeros become holes. 4 KiB is
	// the block size of the common Linux file systems; a zero run shorter
	// than that could not become a hole anyway.
	holeBlock = 4 << 10
	// copyChunk is how much is read per system call.
	copyChunk = 1 << 20
)

var zeroBlock = make([]byte, holeBlock)

// CopyFile copies src to dst atomically (see Create) and sparsely: runs of
// zero blocks in src are not written, so the copy of a raw disk image that
// is mostly empty stays mostly holes. Data written as explicit zeros in
// src also becomes holes, which reads back identically. The copy keeps
// src's permission bits. ctx is checked between chunks; cancelling leaves
// no file behind.
func CopyFile(ctx context.Context, dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("copying %s: not a regular file", src)
	}

	out, err := create(dst, st.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Abort()
		}
	}()
	// create applied the umask; a copy should keep the source's bits.
	if err := out.File().Chmod(st.Mode().Perm()); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}

	buf := make([]byte, copyChunk)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("copying %s to %s: %w", src, dst, err)
		}
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if err := writeSparse(out.File(), buf[:n], off); err != nil {
				return fmt.Errorf("copying %s to %s: %w", src, dst, err)
			}
			off += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("copying %s to %s: reading: %w", src, dst, rerr)
		}
	}
	// Trailing holes were never written: set the length explicitly.
	if err := out.File().Truncate(off); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Commit()
}

// writeSparse writes the non-zero blocks of p at offset off, merging
// adjacent non-zero blocks into one write.
func writeSparse(f *os.File, p []byte, off int64) error {
	start := -1 // start of the current non-zero run, or -1
	for i := 0; i < len(p); i += holeBlock {
		end := min(i+holeBlock, len(p))
		zero := bytes.Equal(p[i:end], zeroBlock[:end-i])
		switch {
		case !zero && start < 0:
			start = i
		case zero && start >= 0:
			if _, err := f.WriteAt(p[start:i], off+int64(start)); err != nil {
				return err
			}
			start = -1
		}
	}
	if start >= 0 {
		if _, err := f.WriteAt(p[start:], off+int64(start)); err != nil {
			return err
		}
	}
	return nil
}

// RenameDir moves the finished directory src to dst. Both must be on the
// same file system.
//
// Without replace, an existing dst is an error (fs.ErrExist); the check
// and the rename are not one atomic operation, so two concurrent callers
// must not race for the same dst.
//
// With replace, an existing dst is first renamed aside (".NAME.old-RANDOM")
// and removed only after src is in place, so a failure at any point leaves
// either the old or the new directory at dst, never neither. If moving src
// fails, the old directory is moved back.
func RenameDir(src, dst string, replace bool) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("moving %s to %s: %w", src, dst, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("moving %s to %s: source is not a directory", src, dst)
	}
	_, err = os.Lstat(dst)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("moving %s to %s: %w", src, dst, err)
	}
	if exists && !replace {
		return fmt.Errorf("moving %s to %s: %w", src, dst, fs.ErrExist)
	}
	if !exists {
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("moving %s to %s: %w", src, dst, err)
		}
		return SyncDir(filepath.Dir(dst))
	}

	dir, base := filepath.Split(dst)
	old := filepath.Join(dir, "."+base+".old-"+randomSuffix())
	if err := os.Rename(dst, old); err != nil {
		return fmt.Errorf("moving old %s aside: %w", dst, err)
	}
	if err := os.Rename(src, dst); err != nil {
		if rerr := os.Rename(old, dst); rerr != nil {
			return fmt.Errorf("moving %s to %s: %w (and restoring the old directory from %s failed: %v)", src, dst, err, old, rerr)
		}
		return fmt.Errorf("moving %s to %s: %w", src, dst, err)
	}
	if err := SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("removing replaced directory %s: %w", old, err)
	}
	return nil
}
