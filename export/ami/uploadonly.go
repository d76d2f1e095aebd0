package ami

import (
	"context"
	"fmt"
)

// Upload runs only the S3 half of Import: it uploads diskPath to
// s3://s3_bucket_name/s3_key_name with the same multipart uploader and
// leaves the object there. The benchmark (bench/) measures upload
// throughput with it against an in-process S3 server.
func Upload(ctx context.Context, c Config, diskPath string, ui UI) (key string, err error) {
	if err := c.Prepare(); err != nil {
		return "", err
	}
	im := &importer{c: c, ui: ui}
	if err := im.connect(ctx); err != nil {
		return "", err
	}
	im.key = renderKey(c.S3KeyName, c.clock())
	if err := im.upload(ctx, diskPath); err != nil {
		return "", fmt.Errorf("uploading %s: %w", diskPath, err)
	}
	return im.key, nil
}
