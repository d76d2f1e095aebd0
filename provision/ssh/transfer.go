package ssh

import (
	"context"
	"errors"
	"fmt"
	"github.com/kilnbuild/kiln/internal/fsx"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pkg/sftp"
)

// Upload writes r to dst in the guest with the given permissions (0 keeps
// the server's default), creating missing parent directories.
func (c *Client) Upload(ctx context.Context, dst string, r io.Reader, mode os.FileMode) error {
	return c.withSFTP(ctx, "uploading "+dst, func(sc *sftp.Client) error {
		return putFile(sc, dst, r, mode)
	})
}

// UploadDir copies the local directory srcDir into dst in the guest, with
// Packer's rule: "src/" (trailing slash) copies the contents of src into
// dst, "src" copies the directory itself, as dst/src.
func (c *Client) UploadDir(ctx context.Context, dst, srcDir string) error {
	root := dst
	if !hasTrailingSlash(srcDir) {
		root = path.Join(dst, filepath.Base(srcDir))
	}
	what := fmt.Sprintf("uploading directory %s to %s", srcDir, dst)
	return c.withSFTP(ctx, what, func(sc *sftp.Client) error {
		type dirMode struct {
			path string
			mode fs.FileMode
		}
		var dirs []dirMode
		err := filepath.WalkDir(srcDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, err := filepath.Rel(srcDir, p)
			if err != nil {
				return err
			}
			target := path.Join(root, filepath.ToSlash(rel))
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				dirs = append(dirs, dirMode{target, info.Mode()})
				return sc.MkdirAll(target)
			case d.Type()&fs.ModeSymlink != 0:
				link, err := os.Readlink(p)
				if err != nil {
					return err
				}
				sc.Remove(target) // Symlink fails if target exists.
				return sc.Symlink(link, target)
			case d.Type().IsRegular():
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				return putFile(sc, target, f, info.Mode())
			default:
				return nil // sockets, fifos, devices: nothing to copy
			}
		})
		if err != nil {
			return err
		}
		// Directory modes last, deepest first, so a read-only directory
		// does not stop its own contents from being written.
		for _, d := range slices.Backward(dirs) {
			if err := sc.Chmod(d.path, d.mode&fs.ModePerm); err != nil {
				return err
			}
		}
		return nil
	})
}

// Download copies the guest file src to w.
func (c *Client) Download(ctx context.Context, src string, w io.Writer) error {
	return c.withSFTP(ctx, "downloading "+src, func(sc *sftp.Client) error {
		f, err := sc.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteTo(w)
		return err
	})
}

// DownloadDir copies the guest directory src into the local directory
// dst, with the same trailing-slash rule as UploadDir. Each file is
// written atomically.
func (c *Client) DownloadDir(ctx context.Context, src, dst string) error {
	root := dst
	if !strings.HasSuffix(src, "/") {
		root = filepath.Join(dst, path.Base(src))
	}
	clean := path.Clean(src)
	what := fmt.Sprintf("downloading directory %s to %s", src, dst)
	return c.withSFTP(ctx, what, func(sc *sftp.Client) error {
		type dirMode struct {
			path string
			mode fs.FileMode
		}
		var dirs []dirMode
		w := sc.Walk(clean)
		for w.Step() {
			if err := w.Err(); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(w.Path(), clean), "/")
			target := filepath.Join(root, filepath.FromSlash(rel))
			st := w.Stat()
			switch {
			case st.IsDir():
				dirs = append(dirs, dirMode{target, st.Mode()})
				if err := os.MkdirAll(target, 0o755); err != nil {
					return err
				}
			case st.Mode()&fs.ModeSymlink != 0:
				link, err := sc.ReadLink(w.Path())
				if err != nil {
					return err
				}
				os.Remove(target)
				if err := os.Symlink(link, target); err != nil {
					return err
				}
			case st.Mode().IsRegular():
				err := fsx.WriteWith(target, st.Mode()&fs.ModePerm, func(out io.Writer) error {
					f, err := sc.Open(w.Path())
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = f.WriteTo(out)
					return err
				})
				if err != nil {
					return err
				}
			}
		}
		for _, d := range slices.Backward(dirs) {
			if err := os.Chmod(d.path, d.mode&fs.ModePerm); err != nil {
				return err
			}
		}
		return nil
	})
}

// withSFTP runs fn with the connection's SFTP client and turns its error
// into one that says what was being done and whether the connection
// dropped.
func (c *Client) withSFTP(ctx context.Context, what string, fn func(*sftp.Client) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	cn, sc, err := c.sftpClient(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// pkg/sftp takes no context: closing the client is what aborts
	// requests in flight.
	stop := context.AfterFunc(ctx, func() { cn.dropSFTP(sc) })
	err = fn(sc)
	if !stop() {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	if err == nil {
		return nil
	}
	if !answered(err) && cn.deadWithin(100*time.Millisecond) {
		c.drop(cn)
		return fmt.Errorf("%s: %w: %v", what, ErrDisconnected, err)
	}
	if errors.Is(err, sftp.ErrSSHFxConnectionLost) {
		cn.dropSFTP(sc)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// answered reports whether err is a reply from the server (or a local
// file error), which proves the connection was alive.
func answered(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrExist)
}

// sftpClient returns the connection's SFTP client, starting it (and
// reconnecting once) if needed.
func (c *Client) sftpClient(ctx context.Context) (*conn, *sftp.Client, error) {
	for try := 0; ; try++ {
		cn, err := c.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		cn.sftpMu.Lock()
		if cn.sftp != nil {
			sc := cn.sftp
			cn.sftpMu.Unlock()
			return cn, sc, nil
		}
		sc, err := sftp.NewClient(cn.ssh, sftp.UseConcurrentWrites(true))
		if err == nil {
			cn.sftp = sc
		}
		cn.sftpMu.Unlock()
		if err == nil {
			return cn, sc, nil
		}
		if !cn.deadWithin(100 * time.Millisecond) {
			return nil, nil, fmt.Errorf("starting sftp (is the sftp subsystem enabled in the guest's sshd?): %w", err)
		}
		c.drop(cn)
		if try > 0 {
			return nil, nil, fmt.Errorf("%w: starting sftp: %v", ErrDisconnected, err)
		}
	}
}

func (cn *conn) dropSFTP(sc *sftp.Client) {
	cn.sftpMu.Lock()
	if cn.sftp == sc {
		cn.sftp = nil
	}
	cn.sftpMu.Unlock()
	sc.Close()
}

func putFile(sc *sftp.Client, dst string, r io.Reader, mode os.FileMode) error {
	if dir := path.Dir(dst); dir != "." && dir != "/" {
		if err := sc.MkdirAll(dir); err != nil {
			return err
		}
	}
	f, err := sc.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if mode != 0 {
		return sc.Chmod(dst, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	}
	return nil
}

func hasTrailingSlash(p string) bool {
	return strings.HasSuffix(p, "/") || strings.HasSuffix(p, string(filepath.Separator))
}
