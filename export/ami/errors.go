package ami

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
)

// ErrImportFailed matches (errors.Is) a *TaskError: AWS ended the import
// task without a result.
var ErrImportFailed = errors.New("import task failed")

// TaskError is an import task that AWS ended (status deleted, deleting or
// error), with the reason AWS gave.
type TaskError struct {
	ID, Status, StatusMessage string
}

func (e *TaskError) Error() string {
	msg := e.StatusMessage
	if msg == "" {
		msg = "AWS gave no status message"
	}
	return fmt.Sprintf("import task %s ended with status %q: %s", e.ID, e.Status, msg)
}

// Is makes errors.Is(err, ErrImportFailed) true.
func (e *TaskError) Is(target error) bool { return target == ErrImportFailed }

// The documentation that explains the vmimport service role and the bucket
// permissions it needs.
const roleDoc = "https://docs.aws.amazon.com/vm-import/latest/userguide/required-permissions.html"

// hinted is an error with advice on fixing it. Unwrap keeps the SDK error
// reachable (errors.As to smithy.APIError still works).
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string {
	return strings.TrimSuffix(h.err.Error(), ".") + ". Hint: " + h.hint
}
func (h *hinted) Unwrap() error { return h.err }

// s3Hint explains the S3 errors people hit most, or returns err unchanged.
func (c *Config) s3Hint(err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.ErrorCode() {
	case "AccessDenied", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return &hinted{err, fmt.Sprintf("the credentials in use need s3:PutObject, s3:AbortMultipartUpload and s3:DeleteObject on arn:aws:s3:::%s/*; check the IAM policy and the bucket policy (and, for s3_encryption = \"aws:kms\", kms:GenerateDataKey on the key)", c.S3BucketName)}
	case "NoSuchBucket":
		return &hinted{err, fmt.Sprintf("bucket %q does not exist; create it in region %s first", c.S3BucketName, c.Region)}
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return &hinted{err, fmt.Sprintf("bucket %q is in another region than %s: set region to the bucket's region", c.S3BucketName, c.Region)}
	}
	return err
}

// ec2Hint explains the EC2 errors people hit most, or returns err unchanged.
// VM Import has two principals: the caller, who needs ec2:ImportImage (or
// ImportSnapshot) and friends, and the vmimport service role, which reads
// the bucket; both failures look alike, so the hint names both.
func (c *Config) ec2Hint(err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	code, msg := ae.ErrorCode(), strings.ToLower(ae.ErrorMessage())
	switch {
	case code == "AuthFailure" || code == "UnauthorizedOperation" || code == "AccessDenied" || code == "InvalidClientTokenId":
		return &hinted{err, c.roleHint("the credentials in use are not allowed to make this call (they need ec2:ImportImage or ec2:ImportSnapshot, ec2:Describe*, ec2:RegisterImage, ec2:CopyImage, ec2:CreateTags, ec2:ModifyImageAttribute, ec2:CancelImportTask), or")}
	case strings.Contains(msg, "role") || strings.Contains(msg, "permission"):
		return &hinted{err, c.roleHint("")}
	}
	return err
}

// taskHint explains the import task failures people hit most: the role,
// and ImportImage not recognising the guest OS.
func (c *Config) taskHint(err error, statusMessage string) error {
	m := strings.ToLower(statusMessage)
	switch {
	case strings.Contains(m, "role") || strings.Contains(m, "permission") || strings.Contains(m, "access denied"):
		return &hinted{err, c.roleHint("")}
	case c.ImportMode == "image" && (strings.Contains(m, "unknown os") || strings.Contains(m, "unsupported")):
		return &hinted{err, "ImportImage only takes the operating systems and kernels VM Import knows (https://docs.aws.amazon.com/vm-import/latest/userguide/prerequisites.html); " +
			"an image that already boots on EC2 (ENA and NVMe drivers, as cloud images have) can use import_mode = \"snapshot\", which copies the disk unchanged"}
	}
	return err
}

func (c *Config) roleHint(prefix string) string {
	if prefix != "" {
		prefix += " "
	}
	return fmt.Sprintf("%sthe VM Import service role %q (role_name) is missing or cannot read s3://%s: it needs a trust policy for vmie.amazonaws.com (condition sts:Externalid = \"vmimport\") and a policy allowing s3:GetBucketLocation, s3:GetObject and s3:ListBucket on the bucket plus ec2:ModifySnapshotAttribute, ec2:CopySnapshot, ec2:RegisterImage and ec2:Describe*; see %s",
		prefix, c.RoleName, c.S3BucketName, roleDoc)
}
