// Package fsx holds the file-system primitives every kiln output goes
// through: atomic file writes (temp file in the same directory, fsync,
// rename, fsync of the directory), a sparse-aware atomic copy, and an
// atomic replacement of a finished directory.
//
// Why temp-in-the-same-directory: rename(2) is atomic only within one file
// system, and a reader (QEMU, the next build, a user's script) must see
// either the old file or the complete new one, never a half-written image.
package fsx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// AtomicFile is a file being written under a temporary name next to its
// final path. Nothing appears at the final path until Commit.
//
// The usual shape is:
//
//	f, err := fsx.Create(path)
//	if err != nil { return err }
//	defer f.Abort() // no-op after a successful Commit
//	... write ...
//	return f.Commit()
type AtomicFile struct {
	f    *os.File
	path string // final path
	done bool   // Commit or Abort already ran
}

// TempName returns a fresh temporary name for path, in the same
// directory: ".NAME.tmp-RANDOM". Leading-dot names keep half-written files
// out of globs such as "*.qcow2".
func TempName(path string) string {
	dir, base := filepath.Split(path)
	return filepath.Join(dir, "."+base+".tmp-"+randomSuffix())
}

// randomSuffix returns 12 random hex digits.
func randomSuffix() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Create starts an atomic write of path. The file is created with mode
// 0666 before umask, like os.Create.
func Create(path string) (*AtomicFile, error) {
	return create(path, 0o666)
}

func create(path string, perm os.FileMode) (*AtomicFile, error) {
	for range 10 {
		tmp := TempName(path)
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue // astronomically unlikely; try another name
		}
		if err != nil {
			return nil, fmt.Errorf("creating temporary file for %s: %w", path, err)
		}
		return &AtomicFile{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("creating temporary file for %s: no free temporary name", path)
}

// Write writes to the temporary file.
func (a *AtomicFile) Write(p []byte) (int, error) { return a.f.Write(p) }

// File returns the underlying temporary file, for WriteAt, Seek, Truncate
// or Chmod. Do not Close it; use Commit or Abort.
func (a *AtomicFile) File() *os.File { return a.f }

// Name returns the temporary file's path.
func (a *AtomicFile) Name() string { return a.f.Name() }

// Path returns the final path the file is committed to.
func (a *AtomicFile) Path() string { return a.path }

// Commit makes the written data durable and visible at the final path:
// fsync, close, rename over the final path, fsync of the directory (so the
// rename itself survives a crash). On error the temporary file is removed.
func (a *AtomicFile) Commit() (err error) {
	if a.done {
		return fmt.Errorf("committing %s: already committed or aborted", a.path)
	}
	a.done = true
	tmp := a.f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := a.f.Sync(); err != nil {
		a.f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := a.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, a.path); err != nil {
		return fmt.Errorf("renaming %s into place: %w", a.path, err)
	}
	return SyncDir(filepath.Dir(a.path))
}

// Abort discards the temporary file. It is safe to call after Commit (it
// then does nothing), so it can be deferred unconditionally.
func (a *AtomicFile) Abort() error {
	if a.done {
		return nil
	}
	a.done = true
	cerr := a.f.Close()
	rerr := os.Remove(a.f.Name())
	if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", a.f.Name(), rerr)
	}
	if cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		return fmt.Errorf("closing %s: %w", a.f.Name(), cerr)
	}
	return nil
}

// WriteFile writes data to path atomically: readers see the old content or
// the new content, never a mix. perm is applied like os.WriteFile (before
// umask) but also when path already exists, since the file is new.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	f, err := create(path, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return f.Commit()
}

// SyncDir fsyncs a directory so that entries created, renamed or removed
// in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s for sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
