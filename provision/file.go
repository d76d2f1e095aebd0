package provision

import (
	"context"
	"errors"
	"fmt"
	"github.com/kilnbuild/kiln/internal/fsx"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kilnbuild/kiln/config"
)

// contentFileName is what content becomes when destination is a
// directory, as in Packer.
const contentFileName = "pkr-file-content"

// runFile copies files to or from the guest with Packer's trailing-slash
// rules.
func runFile(ctx context.Context, f *config.File, env Env) error {
	comm, err := env.comm("file")
	if err != nil {
		return err
	}
	if f.Destination == "" {
		return errors.New("destination is required")
	}
	sources := append([]string(nil), f.Sources...)
	if f.Source != "" {
		sources = append(sources, f.Source)
	}
	if f.Content != "" && len(sources) > 0 {
		return errors.New("content conflicts with source/sources")
	}
	switch f.Direction {
	case "", "upload":
		if f.Content != "" {
			dst := f.Destination
			if strings.HasSuffix(dst, "/") {
				dst += contentFileName
			}
			env.Say("Uploading content => %s", dst)
			if err := comm.Upload(ctx, dst, strings.NewReader(f.Content), 0o644); err != nil {
				return fmt.Errorf("uploading content to %s: %w", dst, err)
			}
			return nil
		}
		if len(sources) == 0 {
			return errors.New("one of source, sources or content is required")
		}
		for _, src := range sources {
			if err := uploadOne(ctx, comm, env, src, f.Destination); err != nil {
				return err
			}
		}
		return nil
	case "download":
		if f.Content != "" {
			return errors.New("content cannot be downloaded; use source")
		}
		if len(sources) == 0 {
			return errors.New("one of source or sources is required")
		}
		for _, src := range sources {
			if err := downloadOne(ctx, comm, env, src, f.Destination); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("direction = %q: must be upload or download", f.Direction)
	}
}

// uploadOne uploads a local file or directory. A directory follows the
// source's trailing slash (see Communicator.UploadDir); a file goes to
// dst, or into dst when dst ends in a slash.
func uploadOne(ctx context.Context, comm Communicator, env Env, src, dst string) error {
	env.Say("Uploading %s => %s", src, dst)
	local := localPath(env.Dir, src)
	fi, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if fi.IsDir() {
		if err := comm.UploadDir(ctx, dst, local); err != nil {
			return fmt.Errorf("uploading directory %s: %w", src, err)
		}
		return nil
	}
	target := dst
	if strings.HasSuffix(dst, "/") {
		target = dst + filepath.Base(local)
	}
	r, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer r.Close()
	if err := comm.Upload(ctx, target, r, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("uploading %s to %s: %w", src, target, err)
	}
	return nil
}

// downloadOne downloads a guest file, or a directory when src ends in a
// slash (its contents go into dst), as Packer does. A destination ending
// in a slash is a directory that receives the file under its own name.
func downloadOne(ctx context.Context, comm Communicator, env Env, src, dst string) error {
	local := localPath(env.Dir, dst)
	target, dir := local, filepath.Dir(local)
	if strings.HasSuffix(dst, "/") {
		dir = local
		if !strings.HasSuffix(src, "/") {
			target = filepath.Join(local, path.Base(src))
		}
	}
	env.Say("Downloading %s => %s", src, target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating download directory: %w", err)
	}
	if strings.HasSuffix(src, "/") {
		if err := comm.DownloadDir(ctx, src, target); err != nil {
			return fmt.Errorf("downloading directory %s: %w", src, err)
		}
		return nil
	}
	err := fsx.WriteWith(target, 0o644, func(w io.Writer) error {
		return comm.Download(ctx, src, w)
	})
	if err != nil {
		return fmt.Errorf("downloading %s to %s: %w", src, target, err)
	}
	return nil
}
