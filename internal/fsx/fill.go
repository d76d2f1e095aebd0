package fsx

import (
	"context"
	"fmt"
	"io"
	"os"
)

// WriteWith writes path atomically from what fill writes, with mode perm
// (applied with Chmod, so umask does not narrow it). A fill that fails
// leaves nothing under path and no temporary file.
func WriteWith(path string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	f, err := create(path, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.File().Chmod(perm); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return f.Commit()
}

// CopyContext is io.Copy that stops when ctx is done and reports the bytes
// copied so far to progress (which may be nil). It checks ctx between 1 MiB
// chunks, so cancelling a multi-GiB copy takes effect at once.
func CopyContext(ctx context.Context, w io.Writer, r io.Reader, progress func(int64)) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := r.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			if progress != nil {
				progress(n)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
