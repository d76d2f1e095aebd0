package ami

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestPrepareDefaults(t *testing.T) {
	c := Config{S3BucketName: "b"}
	if err := c.Prepare(); err != nil {
		t.Fatal(err)
	}
	want := Config{S3BucketName: "b", Format: "ova", S3KeyName: "packer-import-{{timestamp}}.ova", Architecture: "x86_64",
		BootMode: "legacy-bios", ImportMode: "image", RoleName: "vmimport", timeout: 2 * time.Hour}
	if c.Format != want.Format || c.S3KeyName != want.S3KeyName || c.Architecture != want.Architecture ||
		c.BootMode != want.BootMode || c.ImportMode != want.ImportMode || c.RoleName != want.RoleName || c.timeout != want.timeout {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	// Prepare twice changes nothing.
	before := c
	if err := c.Prepare(); err != nil || c.S3KeyName != before.S3KeyName || c.timeout != before.timeout {
		t.Errorf("second Prepare: %v, %+v", err, c)
	}
}

func TestPrepareArm64(t *testing.T) {
	for _, tc := range []struct{ format, mode string }{{"raw", "snapshot"}, {"vmdk", "snapshot"}, {"ova", "image"}} {
		c := Config{S3BucketName: "b", Architecture: "arm64", Format: tc.format, Platform: "linux"}
		if err := c.Prepare(); err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		if c.BootMode != "uefi" || c.ImportMode != tc.mode {
			t.Errorf("arm64 %s: boot_mode %q import_mode %q, want uefi %s", tc.format, c.BootMode, c.ImportMode, tc.mode)
		}
	}
}

func TestPrepareErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want []string
	}{
		{"missing bucket", Config{}, []string{"s3_bucket_name must be set"}},
		{"qcow2", Config{S3BucketName: "b", Format: "qcow2"}, []string{`format "qcow2"`, "raw"}},
		{"arm64 bios", Config{S3BucketName: "b", Architecture: "arm64", BootMode: "legacy-bios", Format: "raw"}, []string{"legacy-bios", "arm64"}},
		{"uefi without platform", Config{S3BucketName: "b", BootMode: "uefi"}, []string{"platform must be set"}},
		{"snapshot ova", Config{S3BucketName: "b", ImportMode: "snapshot"}, []string{"ImportSnapshot cannot read ova"}},
		{"bad mode", Config{S3BucketName: "b", ImportMode: "fast"}, []string{`import_mode "fast"`}},
		{"half keys", Config{S3BucketName: "b", AccessKey: "AKID"}, []string{"access_key and secret_key"}},
		{"timeout", Config{S3BucketName: "b", ImportTimeout: "soon"}, []string{`import_timeout "soon"`}},
		{"encryption", Config{S3BucketName: "b", S3Encryption: "rot13"}, []string{`s3_encryption "rot13"`}},
		{"kms without encrypt", Config{S3BucketName: "b", AMIKMSKey: "k"}, []string{"ami_encrypt"}},
		{"endpoint", Config{S3BucketName: "b", S3Endpoint: "localhost:9000"}, []string{"s3_endpoint"}},
		{"several at once", Config{Format: "qcow2", Architecture: "sparc"}, []string{"s3_bucket_name", "qcow2", "sparc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Prepare()
			if err == nil {
				t.Fatal("Prepare accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

func TestPartSize(t *testing.T) {
	for _, size := range []int64{0, 1, 20 << 20, 160 << 30, 1 << 40, 5 << 40} {
		p := partSize(size)
		if p < minPartSize || p%(1<<20) != 0 {
			t.Errorf("partSize(%d) = %d: below the minimum or not whole MiB", size, p)
		}
		if parts := (size + p - 1) / p; parts > maxParts {
			t.Errorf("partSize(%d) = %d needs %d parts, over S3's %d", size, p, parts, maxParts)
		}
	}
	if partSize(20<<20) != minPartSize {
		t.Error("a small disk should use the minimum part size")
	}
}

func TestRenderKeyAndName(t *testing.T) {
	now := time.Unix(1700000000, 0)
	if got := renderKey("imports/packer-import-{{timestamp}}.raw", now); got != "imports/packer-import-1700000000.raw" {
		t.Errorf("renderKey = %q", got)
	}
	if got := amiName("imports/disk+v1:{x}.raw"); got != "disk-v1--x-" {
		t.Errorf("amiName = %q", got)
	}
}

func TestSniff(t *testing.T) {
	tar := make([]byte, 512)
	copy(tar[257:], "ustar")
	for _, tc := range []struct {
		head, want string
	}{
		{"QFI\xfb\x00\x00\x00\x03", "qcow2"},
		{"KDMV\x01\x00\x00\x00", "vmdk"},
		{"vhdxfile", "vhdx"},
		{"conectix", "vhd"},
		{string(tar), "ova"},
		{"\xeb\x63\x90 boot sector", ""},
	} {
		if got := sniff([]byte(tc.head)); got != tc.want {
			t.Errorf("sniff(%q...) = %q, want %q", tc.head[:4], got, tc.want)
		}
	}
}

// The lead decodes the post-processor block with gohcl: the tags must be
// Packer's option names and the types must take HCL values.
func TestDecodeHCL(t *testing.T) {
	src := `
s3_bucket_name = "images"
format         = "raw"
architecture   = "arm64"
tags           = { Name = "kiln", Build = "7" }
ami_users      = ["123456789012"]
skip_clean     = true
import_timeout = "3h"
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "pp.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var c Config
	if diags := gohcl.DecodeBody(f.Body, nil, &c); diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := c.Prepare(); err != nil {
		t.Fatal(err)
	}
	if c.S3BucketName != "images" || c.Tags["Build"] != "7" || len(c.AMIUsers) != 1 || !c.SkipClean ||
		c.timeout != 3*time.Hour || c.ImportMode != "snapshot" || c.BootMode != "uefi" {
		t.Errorf("decoded %+v", c)
	}

	// s3_bucket_name is required, with HCL's own diagnostic.
	f, _ = hclsyntax.ParseConfig([]byte(`format = "raw"`), "pp.hcl", hcl.InitialPos)
	if diags := gohcl.DecodeBody(f.Body, nil, &Config{}); !diags.HasErrors() || !strings.Contains(diags.Error(), "s3_bucket_name") {
		t.Errorf("missing s3_bucket_name: %v", diags)
	}
}
