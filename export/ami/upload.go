package ami

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	// minPartSize is the smallest multipart part used: above S3's 5 MiB
	// minimum, large enough that requests are not the bottleneck, small
	// enough that concurrency × part size stays under 100 MiB of memory.
	minPartSize = 16 << 20
	// maxParts is S3's limit on the parts of one upload.
	maxParts = 10000
	// uploadConcurrency is how many parts are in flight at once.
	uploadConcurrency = 4
)

// partSize picks the part size for an object of size bytes: minPartSize,
// or larger (a whole number of MiB) when 10 000 parts would not cover it.
func partSize(size int64) int64 {
	const mib = 1 << 20
	need := (size + maxParts - 1) / maxParts
	need = (need + mib - 1) / mib * mib
	return max(need, minPartSize)
}

// upload sends the disk to s3://bucket/key as a multipart upload. A failed
// upload is aborted by the transfer manager, so it leaves no parts behind.
func (im *importer) upload(ctx context.Context, path string) error {
	c := &im.c
	dest := fmt.Sprintf("s3://%s/%s", c.S3BucketName, im.key)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening disk for upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening disk for upload: %w", err)
	}
	size := fi.Size()

	if c.S3Encryption == "AES256" && c.S3EncryptionKey != "" {
		im.ui.say("Ignoring s3_encryption_key: it applies to s3_encryption = \"aws:kms\" only")
	}
	name := filepath.Base(path)
	im.ui.say("Uploading %s (%s) to %s", name, sizeString(size), dest)

	part := partSize(size)
	tm := transfermanager.New(im.s3, func(o *transfermanager.Options) {
		o.PartSizeBytes = part
		o.MultipartUploadThreshold = part
		o.Concurrency = uploadConcurrency
		// Abort the multipart upload even when ctx was cancelled.
		o.FailTimeout = cleanupTimeout
		if c.S3Endpoint != "" {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}
	})
	in := &transfermanager.UploadObjectInput{
		Bucket:        aws.String(c.S3BucketName),
		Key:           aws.String(im.key),
		Body:          &countingReader{r: f, total: size, report: im.ui.progress("Uploading " + name)},
		ContentLength: aws.Int64(size),
	}
	if c.S3Encryption != "" {
		in.ServerSideEncryption = tmtypes.ServerSideEncryption(c.S3Encryption)
		if c.S3Encryption == "aws:kms" && c.S3EncryptionKey != "" {
			in.SSEKMSKeyID = aws.String(c.S3EncryptionKey)
		}
	}
	if _, err := tm.UploadObject(ctx, in); err != nil {
		return fmt.Errorf("uploading %s to %s: %w", name, dest, c.s3Hint(err))
	}
	im.ui.say("Uploaded %s to %s", name, dest)
	return nil
}

// deleteObject removes the uploaded disk. It runs on a detached context:
// it is cleanup, wanted also after a failure or Ctrl-C.
func (im *importer) deleteObject(ctx context.Context) error {
	c := &im.c
	ctx, cancel := detached(ctx)
	defer cancel()
	im.ui.say("Deleting import source s3://%s/%s", c.S3BucketName, im.key)
	_, err := im.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.S3BucketName), Key: aws.String(im.key)})
	if err != nil {
		return fmt.Errorf("deleting s3://%s/%s: %w", c.S3BucketName, im.key, c.s3Hint(err))
	}
	return nil
}

// countingReader reports how much of the file the upload has read. The
// transfer manager reads the body from one goroutine, in order, so no
// locking is needed; reading runs ahead of the network by at most
// concurrency × part size.
type countingReader struct {
	r      io.Reader
	done   int64
	total  int64
	report func(done, total int64)
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.done += int64(n)
		r.report(r.done, r.total)
	}
	return n, err
}

// checkDisk opens the disk and checks its format; see checkFormat.
func checkDisk(path, format string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening disk for upload: %w", err)
	}
	defer f.Close()
	if err := checkFormat(f, format); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// checkFormat refuses, before a long upload, a disk whose content says it
// is not in the format VM Import will be told it is: the import would
// otherwise fail an hour later with "Unsupported disk format".
func checkFormat(f *os.File, format string) error {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading disk header: %w", err)
	}
	got := sniff(head[:n])
	want := format
	switch {
	case got == format:
		return nil
	case got == "" && (format == "raw" || format == "vhd"): // raw and fixed VHD have no header
		return nil
	case got == "qcow2":
		return fmt.Errorf("the disk is qcow2, which VM Import does not accept: build with format = \"raw\" in the qemu source, or convert it (qemu-img convert -O raw, or -O vmdk -o subformat=streamOptimized) and set format to match")
	case got == "":
		return fmt.Errorf("format = %q, but the disk does not start with a %s header (is it raw? then set format = \"raw\")", want, want)
	default:
		return fmt.Errorf("format = %q, but the disk is %s: set format = %q", want, got, got)
	}
}

// sniff names the image format of a disk from its first 512 bytes, or ""
// for none recognised (raw).
func sniff(h []byte) string {
	switch {
	case bytes.HasPrefix(h, []byte("QFI\xfb")):
		return "qcow2"
	case bytes.HasPrefix(h, []byte("KDMV")), bytes.HasPrefix(h, []byte("# Disk DescriptorFile")):
		return "vmdk"
	case bytes.HasPrefix(h, []byte("vhdxfile")):
		return "vhdx"
	case bytes.HasPrefix(h, []byte("conectix")): // dynamic VHD: footer copy first
		return "vhd"
	case len(h) >= 262 && string(h[257:262]) == "ustar":
		return "ova" // an OVA is a tar archive
	}
	return ""
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
