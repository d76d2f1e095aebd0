package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// isCode reports whether err is a libvirt error with the given number.
func isCode(err error, code golibvirt.ErrorNumber) bool {
	var e golibvirt.Error
	return errors.As(err, &e) && e.Code == uint32(code)
}

// EnsurePool makes sure the storage pool exists and is running. A missing
// pool is created as a directory pool at dir (when dir is empty, only an
// existing pool is accepted): a fresh libvirtd has no "default" pool until
// virt-manager or virt-install makes one.
func (c *Conn) EnsurePool(ctx context.Context, name, dir string) error {
	return c.call(ctx, func() error {
		pool, err := c.l.StoragePoolLookupByName(name)
		if isCode(err, golibvirt.ErrNoStoragePool) && dir != "" {
			x, merr := (&libvirtxml.StoragePool{
				Type:   "dir",
				Name:   name,
				Target: &libvirtxml.StoragePoolTarget{Path: dir},
			}).Marshal()
			if merr != nil {
				return merr
			}
			if pool, err = c.l.StoragePoolDefineXML(x, 0); err != nil {
				return fmt.Errorf("defining storage pool %s at %s: %w", name, dir, err)
			}
			if err := c.l.StoragePoolBuild(pool, 0); err != nil {
				return fmt.Errorf("building storage pool %s: %w", name, err)
			}
			c.l.StoragePoolSetAutostart(pool, 1)
		} else if err != nil {
			return fmt.Errorf("looking up storage pool %s: %w", name, err)
		}
		active, err := c.l.StoragePoolIsActive(pool)
		if err != nil {
			return fmt.Errorf("checking storage pool %s: %w", name, err)
		}
		if active == 0 {
			if err := c.l.StoragePoolCreate(pool, 0); err != nil {
				return fmt.Errorf("starting storage pool %s: %w", name, err)
			}
		}
		return nil
	})
}

// CreateVolume creates an empty volume of the given format ("qcow2",
// "raw") and virtual size in pool.
func (c *Conn) CreateVolume(ctx context.Context, v Volume, capacity int64) error {
	x, err := (&libvirtxml.StorageVolume{
		Name:     v.Name,
		Capacity: &libvirtxml.StorageVolumeSize{Value: uint64(capacity), Unit: "bytes"},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: v.Format}},
	}).Marshal()
	if err != nil {
		return err
	}
	return c.call(ctx, func() error {
		pool, err := c.l.StoragePoolLookupByName(v.Pool)
		if err != nil {
			return fmt.Errorf("looking up storage pool %s: %w", v.Pool, err)
		}
		if _, err := c.l.StorageVolCreateXML(pool, x, 0); err != nil {
			return fmt.Errorf("creating volume %s/%s: %w", v.Pool, v.Name, err)
		}
		return nil
	})
}

// UploadFile creates volume v sized for the local file and streams the
// file's bytes into it over the connection. The file is uploaded as is:
// a qcow2 file becomes a qcow2 volume of the same virtual size.
func (c *Conn) UploadFile(ctx context.Context, v Volume, path string, progress func(done, total int64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := c.CreateVolume(ctx, v, fi.Size()); err != nil {
		return err
	}
	var r io.Reader = f
	if progress != nil {
		r = &countingReader{r: f, total: fi.Size(), fn: progress}
	}
	return c.call(ctx, func() error {
		vol, err := c.lookupVolume(v)
		if err != nil {
			return err
		}
		if err := c.l.StorageVolUpload(vol, r, 0, uint64(fi.Size()), 0); err != nil {
			return fmt.Errorf("uploading %s to volume %s/%s: %w", path, v.Pool, v.Name, err)
		}
		return nil
	})
}

// Download streams volume v into w (the volume's bytes as stored, so a
// qcow2 volume arrives as a qcow2 file). The stream runs on a connection
// of its own, bounded by ctx (see wireConn).
func (c *Conn) Download(ctx context.Context, v Volume, w io.Writer) error {
	var vol golibvirt.StorageVol
	err := c.call(ctx, func() error {
		var err error
		vol, err = c.lookupVolume(v)
		return err
	})
	if err != nil {
		return err
	}
	wc, closeWire, err := dialWire(ctx, c.URI)
	if err != nil {
		return fmt.Errorf("downloading volume %s/%s: %w", v.Pool, v.Name, err)
	}
	defer closeWire()
	var e xdrEncoder
	e.str(vol.Pool)
	e.str(vol.Name)
	e.str(vol.Key)
	e.uint64(0) // offset
	e.uint64(0) // length: all of it
	e.uint32(0) // flags: no sparse stream, holes come as zeros
	if _, err := wc.download(procStorageVolDownload, e.b, w, nil); err != nil {
		return fmt.Errorf("downloading volume %s/%s: %w", v.Pool, v.Name, ctxErr(ctx, err))
	}
	return nil
}

// DeleteVolume deletes v; a volume that is already gone is not an error.
func (c *Conn) DeleteVolume(ctx context.Context, v Volume) error {
	return c.call(ctx, func() error {
		vol, err := c.lookupVolume(v)
		if isCode(err, golibvirt.ErrNoStorageVol) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.l.StorageVolDelete(vol, 0); err != nil && !isCode(err, golibvirt.ErrNoStorageVol) {
			return fmt.Errorf("deleting volume %s/%s: %w", v.Pool, v.Name, err)
		}
		return nil
	})
}

// VolumePath is the volume's path on the libvirt host, for messages.
func (c *Conn) VolumePath(ctx context.Context, v Volume) (string, error) {
	var p string
	err := c.call(ctx, func() error {
		vol, err := c.lookupVolume(v)
		if err != nil {
			return err
		}
		p, err = c.l.StorageVolGetPath(vol)
		return err
	})
	return p, err
}

func (c *Conn) lookupVolume(v Volume) (golibvirt.StorageVol, error) {
	pool, err := c.l.StoragePoolLookupByName(v.Pool)
	if err != nil {
		return golibvirt.StorageVol{}, fmt.Errorf("looking up storage pool %s: %w", v.Pool, err)
	}
	vol, err := c.l.StorageVolLookupByName(pool, v.Name)
	if err != nil {
		return golibvirt.StorageVol{}, fmt.Errorf("looking up volume %s/%s: %w", v.Pool, v.Name, err)
	}
	return vol, nil
}

type countingReader struct {
	r     io.Reader
	n     int64
	total int64
	fn    func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.fn(c.n, c.total)
	return n, err
}
