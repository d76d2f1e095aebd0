package ami

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// rootDevice is the root device name of a registered AMI: /dev/sda1 for
// Windows (which expects it), /dev/xvda for Linux (Amazon Linux's and most
// cloud images' convention; the kernel sees an NVMe or xvda disk anyway).
func (c *Config) rootDevice() string {
	if c.Platform == "windows" {
		return "/dev/sda1"
	}
	return "/dev/xvda"
}

// register makes an AMI from an imported snapshot (import_mode snapshot).
func (im *importer) register(ctx context.Context, snapshot string) (string, error) {
	c := &im.c
	name := c.AMIName
	if name == "" {
		name = amiName(im.key)
	}
	root := c.rootDevice()
	in := &ec2.RegisterImageInput{
		Name:           aws.String(name),
		Architecture:   types.ArchitectureValues(c.Architecture),
		BootMode:       types.BootModeValues(c.BootMode),
		RootDeviceName: aws.String(root),
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: aws.String(root),
			Ebs: &types.EbsBlockDevice{
				SnapshotId:          aws.String(snapshot),
				DeleteOnTermination: aws.Bool(true),
				VolumeType:          types.VolumeTypeGp3,
			},
		}},
		EnaSupport:         aws.Bool(true),
		VirtualizationType: aws.String("hvm"),
	}
	if c.AMIDescription != "" {
		in.Description = aws.String(c.AMIDescription)
	}
	if c.IMDSSupport != "" {
		in.ImdsSupport = types.ImdsSupportValues(c.IMDSSupport)
	}
	out, err := im.ec2.RegisterImage(ctx, in)
	if err != nil {
		return "", fmt.Errorf("registering AMI %q from snapshot %s (the snapshot is kept): %w", name, snapshot, c.ec2Hint(err))
	}
	id := aws.ToString(out.ImageId)
	im.ui.say("Registered AMI %s (%s) from snapshot %s", id, name, snapshot)
	return id, nil
}

// amiName derives an AMI name from the S3 key: its base name without the
// extension, with characters AMI names do not allow replaced by '-'.
func amiName(key string) string {
	base := strings.TrimSuffix(path.Base(key), path.Ext(key))
	name := strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("()[] ./-'@_", r)) {
			return r
		}
		return '-'
	}, base)
	for len(name) < 3 {
		name += "-"
	}
	if len(name) > 128 {
		name = name[:128]
	}
	return name
}

// rename gives the imported AMI the name ami_name, which ImportImage cannot
// set: like Packer, it copies the AMI under that name, waits for the copy
// and deregisters the original (and its snapshots). It returns the copy
// and its snapshots.
func (im *importer) rename(ctx context.Context, ami string) (string, []string, error) {
	c := &im.c
	in := &ec2.CopyImageInput{
		Name:          aws.String(c.AMIName),
		SourceImageId: aws.String(ami),
		SourceRegion:  aws.String(im.region),
		ClientToken:   aws.String(clientToken()),
	}
	if c.AMIDescription != "" {
		in.Description = aws.String(c.AMIDescription)
	}
	if c.AMIEncrypt {
		in.Encrypted = aws.Bool(true)
		if c.AMIKMSKey != "" {
			in.KmsKeyId = aws.String(c.AMIKMSKey)
		}
	}
	out, err := im.ec2.CopyImage(ctx, in)
	if err != nil {
		return ami, nil, fmt.Errorf("copying AMI %s to rename it %q (the imported AMI is kept): %w", ami, c.AMIName, c.ec2Hint(err))
	}
	copyID := aws.ToString(out.ImageId)
	im.ui.say("Copying AMI %s to %s named %q", ami, copyID, c.AMIName)
	img, err := im.waitAvailable(ctx, copyID)
	if err != nil {
		return ami, nil, fmt.Errorf("renaming AMI %s to %q (the imported AMI is kept): %w", ami, c.AMIName, err)
	}
	im.ui.say("Deregistering the intermediate AMI %s and its snapshots", ami)
	if _, err := im.ec2.DeregisterImage(ctx, &ec2.DeregisterImageInput{
		ImageId:                   aws.String(ami),
		DeleteAssociatedSnapshots: aws.Bool(true),
	}); err != nil {
		return copyID, snapshotsOf(img), fmt.Errorf("deregistering intermediate AMI %s (%s is ready): %w", ami, copyID, c.ec2Hint(err))
	}
	return copyID, snapshotsOf(img), nil
}

// waitAvailable polls an AMI until it is available, with the same backoff
// and timeout as the import.
func (im *importer) waitAvailable(ctx context.Context, id string) (types.Image, error) {
	ctx, stop := context.WithTimeout(ctx, im.c.timeout)
	defer stop()
	delay, maxDelay := im.c.backoff()
	for {
		out, err := im.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil && ctx.Err() == nil {
			return types.Image{}, fmt.Errorf("checking AMI %s: %w", id, im.c.ec2Hint(err))
		}
		if err == nil && len(out.Images) > 0 {
			img := out.Images[0]
			switch img.State {
			case types.ImageStateAvailable:
				return img, nil
			case types.ImageStateFailed, types.ImageStateError, types.ImageStateInvalid, types.ImageStateDeregistered:
				reason := "no reason given"
				if img.StateReason != nil && img.StateReason.Message != nil {
					reason = *img.StateReason.Message
				}
				return img, fmt.Errorf("AMI %s is %s: %s", id, img.State, reason)
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return types.Image{}, fmt.Errorf("waiting for AMI %s to become available: %w", id, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, maxDelay)
	}
}

// snapshotsOf lists an image's EBS snapshots, the root device's first.
func snapshotsOf(img types.Image) []string {
	var snaps []string
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil || m.Ebs.SnapshotId == nil {
			continue
		}
		if aws.ToString(m.DeviceName) == aws.ToString(img.RootDeviceName) {
			snaps = slices.Insert(snaps, 0, *m.Ebs.SnapshotId)
		} else {
			snaps = append(snaps, *m.Ebs.SnapshotId)
		}
	}
	return snaps
}

// finish sets what the import could not: the description and IMDS support
// (ImportImage has no field for them), tags on the AMI and its snapshots,
// and launch permissions.
func (im *importer) finish(ctx context.Context, ami string, snaps []string) error {
	c := &im.c
	modify := func(what string, in *ec2.ModifyImageAttributeInput) error {
		in.ImageId = aws.String(ami)
		if _, err := im.ec2.ModifyImageAttribute(ctx, in); err != nil {
			return fmt.Errorf("setting %s of AMI %s: %w", what, ami, c.ec2Hint(err))
		}
		return nil
	}
	if c.ImportMode == "image" {
		if c.AMIDescription != "" && c.AMIName == "" { // a copy got it from CopyImage
			if err := modify("ami_description", &ec2.ModifyImageAttributeInput{
				Description: &types.AttributeValue{Value: aws.String(c.AMIDescription)},
			}); err != nil {
				return err
			}
		}
		if c.IMDSSupport != "" {
			if err := modify("imds_support", &ec2.ModifyImageAttributeInput{
				ImdsSupport: &types.AttributeValue{Value: aws.String(c.IMDSSupport)},
			}); err != nil {
				return err
			}
		}
	}

	if len(c.Tags) > 0 {
		keys := make([]string, 0, len(c.Tags))
		for k := range c.Tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		tags := make([]types.Tag, 0, len(keys))
		for _, k := range keys {
			tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(c.Tags[k])})
		}
		resources := append([]string{ami}, snaps...)
		im.ui.say("Tagging %s", strings.Join(resources, ", "))
		if _, err := im.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: resources, Tags: tags}); err != nil {
			return fmt.Errorf("tagging %s: %w", strings.Join(resources, ", "), c.ec2Hint(err))
		}
	}

	var add []types.LaunchPermission
	for _, u := range c.AMIUsers {
		add = append(add, types.LaunchPermission{UserId: aws.String(u)})
	}
	for _, g := range c.AMIGroups {
		add = append(add, types.LaunchPermission{Group: types.PermissionGroup(g)})
	}
	for _, a := range c.AMIOrgARNs {
		add = append(add, types.LaunchPermission{OrganizationArn: aws.String(a)})
	}
	for _, a := range c.AMIOUARNs {
		add = append(add, types.LaunchPermission{OrganizationalUnitArn: aws.String(a)})
	}
	if len(add) > 0 {
		im.ui.say("Granting launch permission on %s", ami)
		if err := modify("launch permissions (ami_users, ami_groups, ami_org_arns, ami_ou_arns)", &ec2.ModifyImageAttributeInput{
			LaunchPermission: &types.LaunchPermissionModifications{Add: add},
		}); err != nil {
			return err
		}
	}
	return nil
}
