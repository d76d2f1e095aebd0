package ami

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// UI is how Import reports to the person running the build. Both fields
// may be nil. ui.Build's Say and Progress methods fit.
type UI struct {
	Say      func(format string, args ...any)
	Progress func(label string) func(done, total int64)
}

func (u UI) say(format string, args ...any) {
	if u.Say != nil {
		u.Say(format, args...)
	}
}

func (u UI) progress(label string) func(done, total int64) {
	if u.Progress != nil {
		if f := u.Progress(label); f != nil {
			return f
		}
	}
	return func(int64, int64) {}
}

// Result is what an import produced.
type Result struct {
	AMI          string // the final AMI (the copy, when ami_name renamed it)
	SnapshotID   string // the AMI's root EBS snapshot
	ImportTaskID string // import-ami-... or import-snap-...
	Region       string
}

// cleanupTimeout bounds the work done after a failure or cancellation
// (deleting the S3 object, cancelling the import task), which runs on a
// context detached from the cancelled one.
const cleanupTimeout = time.Minute

// importer holds what one Import needs.
type importer struct {
	c      Config
	ui     UI
	s3     *s3.Client
	ec2    *ec2.Client
	region string
	key    string // rendered S3 key
}

// Import uploads diskPath to S3 and imports it as an AMI, following c. It
// calls c.Prepare itself. The S3 object is deleted at the end, whether the
// import succeeded or not, unless skip_clean is set.
//
// On a failure after the AMI exists (tagging, launch permissions, deleting
// the S3 object), the returned Result still names the AMI alongside the
// error, so the caller can report or remove it.
func Import(ctx context.Context, c Config, diskPath string, ui UI) (res Result, err error) {
	if err := c.Prepare(); err != nil {
		return Result{}, err
	}
	if err := checkDisk(diskPath, c.Format); err != nil {
		return Result{}, err
	}
	im := &importer{c: c, ui: ui}
	if err := im.connect(ctx); err != nil {
		return Result{}, err
	}
	res.Region = im.region
	im.key = renderKey(c.S3KeyName, c.clock())

	if err := im.preflight(ctx); err != nil {
		return res, err
	}
	if err := im.upload(ctx, diskPath); err != nil {
		return res, err
	}
	if c.SkipClean {
		defer func() { ui.say("Keeping s3://%s/%s (skip_clean)", c.S3BucketName, im.key) }()
	} else {
		defer func() {
			if derr := im.deleteObject(ctx); derr != nil {
				if err == nil && res.AMI != "" {
					derr = fmt.Errorf("AMI %s is ready, but %w", res.AMI, derr)
				}
				err = errors.Join(err, derr)
			}
		}()
	}

	var snaps []string
	if c.ImportMode == "snapshot" {
		res.ImportTaskID, res.SnapshotID, err = im.importSnapshot(ctx)
		if err != nil {
			return res, err
		}
		if res.AMI, err = im.register(ctx, res.SnapshotID); err != nil {
			return res, err
		}
		snaps = []string{res.SnapshotID}
	} else {
		var task taskState
		res.ImportTaskID, task, err = im.importImage(ctx)
		if err != nil {
			return res, err
		}
		res.AMI, snaps = task.ami, task.snapshots
		if c.AMIName != "" {
			if res.AMI, snaps, err = im.rename(ctx, res.AMI); err != nil {
				return res, err
			}
		}
	}
	if len(snaps) > 0 {
		res.SnapshotID = snaps[0]
	}
	if err := im.finish(ctx, res.AMI, snaps); err != nil {
		return res, err
	}
	ui.say("AMI %s ready in %s", res.AMI, res.Region)
	return res, nil
}

// connect loads the AWS configuration (explicit keys, then profile, then
// the standard chain) and builds the two clients. Request logging stays
// off: a request dump would print credentials and signatures.
func (im *importer) connect(ctx context.Context) error {
	c := &im.c
	var opts []func(*awsconfig.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(c.Profile))
	}
	if c.AccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, c.Token)))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return errors.New("no AWS region: set region in the amazon-import block, or AWS_REGION, or a region in the AWS profile")
	}
	im.region = cfg.Region
	c.Region = cfg.Region // for the hints

	im.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(c.S3Endpoint)
			// S3-compatible stores often reject or ignore the flexible
			// checksums the SDK sends by default.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		o.UsePathStyle = c.S3ForcePathStyle
	})
	im.ec2 = ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if c.EC2Endpoint != "" {
			o.BaseEndpoint = aws.String(c.EC2Endpoint)
		}
	})
	return nil
}

// renderKey expands Packer's {{timestamp}} (Unix seconds) in an S3 key.
func renderKey(key string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	for _, t := range []string{"{{timestamp}}", "{{ timestamp }}", "{{ .timestamp }}", "{{.timestamp}}"} {
		key = strings.ReplaceAll(key, t, ts)
	}
	return key
}

// clientToken makes an idempotency token, so the SDK's retry of a call
// whose response was lost cannot start a second import or copy.
func clientToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "kiln-" + hex.EncodeToString(b[:])
}

// detached is a context for cleanup that must run even though ctx was
// cancelled, bounded by cleanupTimeout.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// SelectDisk picks, as Packer does, the first of a build's output files
// whose name ends in ".<format>", and explains what to change when none
// does (kiln's qemu builds write qcow2 unless told format = "raw").
func (c *Config) SelectDisk(files []string) (string, error) {
	format := c.Format
	if format == "" {
		format = "ova"
	}
	for _, f := range files {
		if strings.HasSuffix(f, "."+format) {
			return f, nil
		}
	}
	hint := "set format = \"raw\" in the qemu source and format = \"raw\" here, or convert the disk in a shell-local post-processor"
	return "", fmt.Errorf("amazon-import needs a .%s file, but the build produced %s: %s",
		format, strings.Join(files, ", "), hint)
}
