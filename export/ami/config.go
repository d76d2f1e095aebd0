// Package ami is kiln's `amazon-import` post-processor: it uploads a disk
// image to S3 and turns it into an AMI with EC2 VM Import, as Packer's
// amazon-import does, with the same option names.
//
// Two ways to import, chosen by import_mode:
//
//   - "image" (Packer's way, the default): ImportImage converts the disk and
//     registers an AMI itself. It inspects the guest OS and changes it
//     (drivers, boot loader), and it rejects some arm64 images.
//   - "snapshot": ImportSnapshot copies the disk bytes into an EBS snapshot
//     unchanged, and RegisterImage makes the AMI from it (ENA on, the boot
//     mode asked for). The guest must already boot on EC2, which images built
//     for the cloud do. This is what works for arm64, and it is the default
//     there when the format allows it (raw, vmdk, vhd).
//
// Why a snapshot import is not the default everywhere: ImportImage accepts
// images that were never prepared for EC2 (Packer users rely on that), and
// it accepts ova and vhdx, which ImportSnapshot does not.
package ami

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config is the amazon-import post-processor block. Field tags are Packer's
// option names; the lead decodes the block into it with gohcl.
type Config struct {
	// Credentials and region. All optional: when empty, the standard AWS
	// chain (environment, shared config and credentials files, SSO, IMDS)
	// is used, as in Packer.
	AccessKey string `hcl:"access_key,optional"`
	SecretKey string `hcl:"secret_key,optional"`
	Token     string `hcl:"token,optional"`
	Region    string `hcl:"region,optional"`
	Profile   string `hcl:"profile,optional"`

	S3BucketName string `hcl:"s3_bucket_name"`
	// S3KeyName defaults to packer-import-{{timestamp}}.<format>;
	// {{timestamp}} (Unix seconds) is rendered at import time.
	S3KeyName       string `hcl:"s3_key_name,optional"`
	S3Encryption    string `hcl:"s3_encryption,optional"`     // AES256 or aws:kms
	S3EncryptionKey string `hcl:"s3_encryption_key,optional"` // KMS key for aws:kms

	Format       string `hcl:"format,optional"`       // ova (default), raw, vmdk, vhd, vhdx
	Architecture string `hcl:"architecture,optional"` // x86_64 (default), i386, arm64
	BootMode     string `hcl:"boot_mode,optional"`    // legacy-bios (default), uefi, uefi-preferred; arm64: uefi
	Platform     string `hcl:"platform,optional"`     // linux, windows
	LicenseType  string `hcl:"license_type,optional"` // AWS, BYOL
	RoleName     string `hcl:"role_name,optional"`    // default vmimport

	Tags           map[string]string `hcl:"tags,optional"`
	AMIName        string            `hcl:"ami_name,optional"`
	AMIDescription string            `hcl:"ami_description,optional"`
	AMIUsers       []string          `hcl:"ami_users,optional"`
	AMIGroups      []string          `hcl:"ami_groups,optional"`
	AMIOrgARNs     []string          `hcl:"ami_org_arns,optional"`
	AMIOUARNs      []string          `hcl:"ami_ou_arns,optional"`
	AMIEncrypt     bool              `hcl:"ami_encrypt,optional"`
	AMIKMSKey      string            `hcl:"ami_kms_key,optional"`
	IMDSSupport    string            `hcl:"imds_support,optional"` // "" or v2.0

	SkipClean bool `hcl:"skip_clean,optional"`

	// kiln extensions.

	// ImportMode is "image" (ImportImage) or "snapshot" (ImportSnapshot +
	// RegisterImage); see the package documentation. Default: "snapshot"
	// for arm64 when the format allows it, else "image".
	ImportMode string `hcl:"import_mode,optional"`
	// ImportTimeout bounds the wait for the import task (and for the copy
	// made by ami_name), as a Go duration. Default 2h.
	ImportTimeout string `hcl:"import_timeout,optional"`
	// Endpoint overrides, for tests and S3-compatible stores.
	S3Endpoint       string `hcl:"s3_endpoint,optional"`
	EC2Endpoint      string `hcl:"ec2_endpoint,optional"`
	S3ForcePathStyle bool   `hcl:"s3_force_path_style,optional"`

	// Set by Prepare.
	timeout time.Duration

	// Test hooks: the poll backoff and the clock. Zero means the default.
	pollMin, pollMax time.Duration
	now              func() time.Time
}

const (
	defaultPollMin = 5 * time.Second
	defaultPollMax = 30 * time.Second
	defaultTimeout = 2 * time.Hour
)

// snapshotFormats are the formats ImportSnapshot reads.
var snapshotFormats = map[string]bool{"raw": true, "vmdk": true, "vhd": true}

// Prepare fills in defaults and checks the options, reporting every problem
// at once, each naming its option. It may be called more than once.
func (c *Config) Prepare() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.S3BucketName == "" {
		bad("s3_bucket_name must be set: the bucket the disk is uploaded to for VM Import")
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		bad("access_key and secret_key must be set together (or neither, to use the standard AWS credential chain)")
	}

	if c.Format == "" {
		c.Format = "ova"
	}
	switch c.Format {
	case "ova", "raw", "vmdk", "vhd", "vhdx":
	default:
		bad("format %q is not accepted by VM Import: use ova, raw, vmdk, vhd or vhdx (qcow2 must be converted first, e.g. format = \"raw\" in the qemu source)", c.Format)
	}
	if c.S3KeyName == "" {
		c.S3KeyName = "packer-import-{{timestamp}}." + c.Format
	}

	if c.Architecture == "" {
		c.Architecture = "x86_64"
	}
	switch c.Architecture {
	case "x86_64", "i386", "arm64":
	default:
		bad("architecture %q: use x86_64, i386 or arm64", c.Architecture)
	}

	if c.BootMode == "" {
		c.BootMode = "legacy-bios"
		if c.Architecture == "arm64" {
			c.BootMode = "uefi" // Graviton instances boot only UEFI
		}
	}
	switch c.BootMode {
	case "legacy-bios", "uefi", "uefi-preferred":
	default:
		bad("boot_mode %q: use legacy-bios, uefi or uefi-preferred", c.BootMode)
	}
	if c.Architecture == "arm64" && c.BootMode == "legacy-bios" {
		bad("boot_mode \"legacy-bios\" is impossible with architecture \"arm64\": arm64 instances boot UEFI only")
	}

	if c.ImportMode == "" {
		c.ImportMode = "image"
		if c.Architecture == "arm64" && snapshotFormats[c.Format] {
			c.ImportMode = "snapshot"
		}
	}
	switch c.ImportMode {
	case "image":
		if c.BootMode == "uefi" && c.Platform == "" {
			bad("platform must be set (linux or windows) to import a uefi image with ImportImage")
		}
	case "snapshot":
		if !snapshotFormats[c.Format] {
			bad("import_mode \"snapshot\" needs format raw, vmdk or vhd: ImportSnapshot cannot read %s", c.Format)
		}
		if c.LicenseType != "" {
			bad("license_type applies to ImportImage only; remove it or use import_mode = \"image\"")
		}
	default:
		bad("import_mode %q: use \"image\" (ImportImage) or \"snapshot\" (ImportSnapshot + RegisterImage)", c.ImportMode)
	}

	switch c.Platform {
	case "", "linux", "windows":
	default:
		bad("platform %q: use linux or windows", c.Platform)
	}
	switch c.LicenseType {
	case "", "AWS", "BYOL":
	default:
		bad("license_type %q: use AWS or BYOL", c.LicenseType)
	}
	if c.RoleName == "" {
		c.RoleName = "vmimport"
	}

	switch c.S3Encryption {
	case "", "AES256", "aws:kms":
	default:
		bad("s3_encryption %q: use AES256 or aws:kms", c.S3Encryption)
	}
	if c.AMIKMSKey != "" && !c.AMIEncrypt {
		bad("ami_kms_key needs ami_encrypt = true")
	}
	if c.IMDSSupport != "" && c.IMDSSupport != "v2.0" {
		bad("imds_support %q: the only value is \"v2.0\" (or leave it unset)", c.IMDSSupport)
	}
	if n := len(c.AMIName); c.AMIName != "" && (n < 3 || n > 128) {
		bad("ami_name %q: AMI names are 3 to 128 characters long", c.AMIName)
	}

	if c.ImportTimeout == "" {
		c.timeout = defaultTimeout
	} else if d, err := time.ParseDuration(c.ImportTimeout); err != nil || d <= 0 {
		bad("import_timeout %q: want a positive duration such as \"90m\" or \"3h\"", c.ImportTimeout)
	} else {
		c.timeout = d
	}

	for _, e := range []struct{ name, value string }{{"s3_endpoint", c.S3Endpoint}, {"ec2_endpoint", c.EC2Endpoint}} {
		if e.value == "" {
			continue
		}
		if u, err := url.Parse(e.value); err != nil || u.Scheme == "" || u.Host == "" {
			bad("%s %q: want a URL such as https://s3.example.com", e.name, e.value)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Config) backoff() (minDelay, maxDelay time.Duration) {
	minDelay, maxDelay = c.pollMin, c.pollMax
	if minDelay <= 0 {
		minDelay = defaultPollMin
	}
	if maxDelay < minDelay {
		maxDelay = max(defaultPollMax, minDelay)
	}
	return minDelay, maxDelay
}
