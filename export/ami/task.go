package ami

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// taskState is one observation of an import task, image or snapshot.
type taskState struct {
	status, progress, message string
	ami                       string   // ImportImage only
	snapshots                 []string // root first
}

func (s taskState) String() string {
	out := s.status
	if s.progress != "" {
		out += " " + s.progress + "%"
	}
	if s.message != "" {
		out += " (" + s.message + ")"
	}
	return out
}

// imageInput is the ImportImage request.
func (im *importer) imageInput() *ec2.ImportImageInput {
	c := &im.c
	in := &ec2.ImportImageInput{
		Architecture: aws.String(c.Architecture),
		BootMode:     types.BootModeValues(c.BootMode),
		ClientToken:  aws.String(clientToken()),
		DiskContainers: []types.ImageDiskContainer{{
			Format:     aws.String(c.Format),
			UserBucket: &types.UserBucket{S3Bucket: aws.String(c.S3BucketName), S3Key: aws.String(im.key)},
		}},
		RoleName: aws.String(c.RoleName),
	}
	if c.Platform != "" {
		in.Platform = aws.String(c.Platform)
	}
	if c.LicenseType != "" {
		in.LicenseType = aws.String(c.LicenseType)
	}
	if c.AMIEncrypt {
		in.Encrypted = aws.Bool(true)
		if c.AMIKMSKey != "" {
			in.KmsKeyId = aws.String(c.AMIKMSKey)
		}
	}
	return in
}

// snapshotInput is the ImportSnapshot request.
func (im *importer) snapshotInput() *ec2.ImportSnapshotInput {
	c := &im.c
	in := &ec2.ImportSnapshotInput{
		ClientToken: aws.String(clientToken()),
		Description: aws.String("kiln import of s3://" + c.S3BucketName + "/" + im.key),
		DiskContainer: &types.SnapshotDiskContainer{
			// ImportSnapshot documents its formats in upper case.
			Format:     aws.String(strings.ToUpper(c.Format)),
			UserBucket: &types.UserBucket{S3Bucket: aws.String(c.S3BucketName), S3Key: aws.String(im.key)},
		},
		RoleName: aws.String(c.RoleName),
	}
	if c.AMIEncrypt {
		in.Encrypted = aws.Bool(true)
		if c.AMIKMSKey != "" {
			in.KmsKeyId = aws.String(c.AMIKMSKey)
		}
	}
	return in
}

// preflight asks EC2, with DryRun, whether the caller may start the
// import, so that missing permissions show before a long upload rather
// than after it. Only a clear "not authorized" answer stops the build: a
// dry run cannot see the object that is not uploaded yet, so other answers
// say nothing certain.
func (im *importer) preflight(ctx context.Context) error {
	var err error
	op := "ImportImage"
	if im.c.ImportMode == "snapshot" {
		op = "ImportSnapshot"
		in := im.snapshotInput()
		in.DryRun = aws.Bool(true)
		_, err = im.ec2.ImportSnapshot(ctx, in)
	} else {
		in := im.imageInput()
		in.DryRun = aws.Bool(true)
		_, err = im.ec2.ImportImage(ctx, in)
	}
	var ae smithy.APIError
	if err == nil || !errors.As(err, &ae) {
		return ctx.Err()
	}
	switch ae.ErrorCode() {
	case "UnauthorizedOperation", "AuthFailure", "InvalidClientTokenId", "AccessDenied":
		return fmt.Errorf("checking permission to call %s before uploading (dry run): %w", op, im.c.ec2Hint(err))
	}
	return nil
}

// importImage starts ImportImage and waits for its AMI.
func (im *importer) importImage(ctx context.Context) (string, taskState, error) {
	c := &im.c
	in := im.imageInput()
	out, err := im.ec2.ImportImage(ctx, in)
	if err != nil {
		return "", taskState{}, fmt.Errorf("starting ImportImage of s3://%s/%s: %w", c.S3BucketName, im.key, c.ec2Hint(err))
	}
	id := aws.ToString(out.ImportTaskId)
	im.ui.say("Started image import %s (this usually takes 15 to 60 minutes)", id)

	st, err := im.wait(ctx, id, func(ctx context.Context) (taskState, bool, error) {
		out, err := im.ec2.DescribeImportImageTasks(ctx, &ec2.DescribeImportImageTasksInput{ImportTaskIds: []string{id}})
		if err != nil || len(out.ImportImageTasks) == 0 {
			return taskState{}, false, err // not visible yet: eventual consistency
		}
		t := out.ImportImageTasks[0]
		st := taskState{
			status:   aws.ToString(t.Status),
			progress: aws.ToString(t.Progress),
			message:  aws.ToString(t.StatusMessage),
			ami:      aws.ToString(t.ImageId),
		}
		for _, d := range t.SnapshotDetails {
			if s := aws.ToString(d.SnapshotId); s != "" {
				st.snapshots = append(st.snapshots, s)
			}
		}
		return st, true, nil
	})
	if err != nil {
		return id, st, err
	}
	if st.ami == "" {
		return id, st, fmt.Errorf("import task %s completed without an AMI id", id)
	}
	im.ui.say("Import task %s done: AMI %s", id, st.ami)
	return id, st, nil
}

// importSnapshot starts ImportSnapshot and waits for its snapshot.
func (im *importer) importSnapshot(ctx context.Context) (string, string, error) {
	c := &im.c
	in := im.snapshotInput()
	out, err := im.ec2.ImportSnapshot(ctx, in)
	if err != nil {
		return "", "", fmt.Errorf("starting ImportSnapshot of s3://%s/%s: %w", c.S3BucketName, im.key, c.ec2Hint(err))
	}
	id := aws.ToString(out.ImportTaskId)
	im.ui.say("Started snapshot import %s", id)

	st, err := im.wait(ctx, id, func(ctx context.Context) (taskState, bool, error) {
		out, err := im.ec2.DescribeImportSnapshotTasks(ctx, &ec2.DescribeImportSnapshotTasksInput{ImportTaskIds: []string{id}})
		if err != nil || len(out.ImportSnapshotTasks) == 0 || out.ImportSnapshotTasks[0].SnapshotTaskDetail == nil {
			return taskState{}, false, err
		}
		d := out.ImportSnapshotTasks[0].SnapshotTaskDetail
		st := taskState{
			status:   aws.ToString(d.Status),
			progress: aws.ToString(d.Progress),
			message:  aws.ToString(d.StatusMessage),
		}
		if s := aws.ToString(d.SnapshotId); s != "" {
			st.snapshots = []string{s}
		}
		return st, true, nil
	})
	if err != nil {
		return id, "", err
	}
	if len(st.snapshots) == 0 {
		return id, "", fmt.Errorf("import task %s completed without a snapshot id", id)
	}
	im.ui.say("Import task %s done: snapshot %s", id, st.snapshots[0])
	return id, st.snapshots[0], nil
}

// maxPollFailures is how many polls in a row may fail before wait gives up.
const maxPollFailures = 3

// wait polls an import task with backoff until it completes, fails, or
// import_timeout passes, saying each change of status. On a timeout, a
// cancellation or a polling error it cancels the task, which AWS would
// otherwise finish into an AMI nobody tracks.
func (im *importer) wait(ctx context.Context, id string, describe func(context.Context) (taskState, bool, error)) (taskState, error) {
	tctx, stop := context.WithTimeout(ctx, im.c.timeout)
	defer stop()
	delay, maxDelay := im.c.backoff()
	var last taskState
	seen := false
	failures := 0 // consecutive polls that failed

	for {
		st, found, err := describe(tctx)
		if err != nil && tctx.Err() == nil {
			// The SDK has retried already; still, one bad minute of the
			// network is no reason to throw away an hour of import.
			if failures++; failures >= maxPollFailures {
				err = fmt.Errorf("checking import task %s: %w", id, im.c.ec2Hint(err))
				return last, errors.Join(err, im.cancelTask(ctx, id, "polling failed"))
			}
			im.ui.say("Checking import task %s failed, will retry: %v", id, err)
		} else if err == nil {
			failures = 0
		}
		if found {
			if !seen || st.String() != last.String() {
				im.ui.say("Import task %s: %s", id, st)
			}
			seen, last = true, st
			switch st.status {
			case "completed":
				return st, nil
			case "deleted", "deleting", "error":
				err := &TaskError{ID: id, Status: st.status, StatusMessage: st.message}
				return st, im.c.taskHint(err, st.message)
			}
		}
		if tctx.Err() == nil {
			t := time.NewTimer(delay)
			select {
			case <-tctx.Done():
			case <-t.C:
			}
			t.Stop()
			delay = min(delay*2, maxDelay)
		}
		if tctx.Err() == nil {
			continue
		}
		if ctx.Err() != nil { // cancelled by the caller
			err := fmt.Errorf("waiting for import task %s: %w", id, ctx.Err())
			return last, errors.Join(err, im.cancelTask(ctx, id, "build cancelled"))
		}
		status := "never reported"
		if seen {
			status = last.String()
		}
		err = fmt.Errorf("import task %s did not finish within %s (import_timeout); last status: %s: %w",
			id, im.c.timeout, status, context.DeadlineExceeded)
		return last, errors.Join(err, im.cancelTask(ctx, id, "import_timeout reached"))
	}
}

// cancelTask asks AWS to stop an import task that kiln gave up on.
func (im *importer) cancelTask(ctx context.Context, id, reason string) error {
	ctx, cancel := detached(ctx)
	defer cancel()
	im.ui.say("Cancelling import task %s (%s)", id, reason)
	_, err := im.ec2.CancelImportTask(ctx, &ec2.CancelImportTaskInput{
		ImportTaskId: aws.String(id),
		CancelReason: aws.String("kiln: " + reason),
	})
	if err != nil {
		return fmt.Errorf("cancelling import task %s: %w", id, err)
	}
	return nil
}
