package ami

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

func TestImportImageHappyPath(t *testing.T) {
	e := newEnv(t)
	e.cfg.Tags = map[string]string{"Name": "kiln-test", "Build": "42"}
	const size = 20<<20 + 12345 // two 16 MiB parts, the second partial
	disk, sum := makeDisk(t, "disk.raw", size)

	// Check the object at the moment EC2 is asked to import it.
	var uploaded [32]byte
	var present bool
	e.ec2.on("ImportImage", func(url.Values) (int, string) {
		uploaded, present = e.object(t, testKey)
		return ok("ImportImage", importStarted)
	})
	e.ec2.sequence("DescribeImportImageTasks",
		imageTask("active", "30", "converting"),
		imageTask("active", "60", "converting"),
		imageTaskDone)
	e.ec2.reply("CreateTags", `<return>true</return>`)

	res, err := Import(context.Background(), e.cfg, disk, e.ui())
	if err != nil {
		t.Fatalf("Import: %v\n%s", err, e.output())
	}
	want := Result{AMI: "ami-0123", SnapshotID: "snap-0123", ImportTaskID: "import-ami-0abc", Region: "us-east-1"}
	if res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}

	if !present || uploaded != sum {
		t.Errorf("object at import time: present=%v, content matches=%v", present, uploaded == sum)
	}
	if n := e.parts.Load(); n != 2 {
		t.Errorf("UploadPart requests = %d, want 2 (multipart upload)", n)
	}
	if e.done != size || e.total != size || e.reports < 2 {
		t.Errorf("progress: last %d/%d after %d reports, want %d/%d", e.done, e.total, e.reports, size, size)
	}

	wantForm(t, e.ec2.call(t, "ImportImage", 0), map[string]string{
		"DiskContainer.1.Format":              "raw",
		"DiskContainer.1.UserBucket.S3Bucket": testBucket,
		"DiskContainer.1.UserBucket.S3Key":    testKey,
		"RoleName":                            "vmimport",
		"Architecture":                        "x86_64",
		"BootMode":                            "legacy-bios",
	})
	if tok := e.ec2.call(t, "ImportImage", 0).Get("ClientToken"); tok == "" {
		t.Error("ImportImage without ClientToken: a retried call could start a second import")
	}
	for i := range 3 {
		wantForm(t, e.ec2.call(t, "DescribeImportImageTasks", i), map[string]string{"ImportTaskId.1": "import-ami-0abc"})
	}
	wantForm(t, e.ec2.call(t, "CreateTags", 0), map[string]string{
		"ResourceId.1": "ami-0123", "ResourceId.2": "snap-0123",
		"Tag.1.Key": "Build", "Tag.1.Value": "42", "Tag.2.Key": "Name", "Tag.2.Value": "kiln-test",
	})
	if !slices.Equal(e.ec2.dryRuns, []string{"ImportImage"}) {
		t.Errorf("dry runs = %v, want one ImportImage permission check", e.ec2.dryRuns)
	}
	wantActions := []string{"ImportImage", "DescribeImportImageTasks", "DescribeImportImageTasks", "DescribeImportImageTasks", "CreateTags"}
	if got := e.ec2.actions(); !slices.Equal(got, wantActions) {
		t.Errorf("EC2 calls = %v, want %v", got, wantActions)
	}
	for _, c := range e.ec2.calls {
		if !strings.Contains(c.auth, "Credential="+testAccess+"/") || !strings.Contains(c.auth, "/us-east-1/ec2/") {
			t.Errorf("request not signed with the static credentials for us-east-1: %q", c.auth)
		}
	}

	if _, still := e.object(t, testKey); still {
		t.Error("S3 object still present after a successful import")
	}
	out := e.output()
	for _, s := range []string{"active 30% (converting)", "active 60% (converting)", "completed", "ami-0123", "Deleting import source"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, testSecret) {
		t.Error("output contains the secret key")
	}
}

func TestImportSnapshotMode(t *testing.T) {
	e := newEnv(t)
	e.cfg.Architecture = "arm64" // defaults to uefi and import_mode snapshot
	e.cfg.AMIName = "kiln-arm64-test"
	e.cfg.AMIDescription = "built by kiln"
	e.cfg.Tags = map[string]string{"Name": "arm"}
	disk, _ := makeDisk(t, "disk.raw", 1<<20)

	e.ec2.reply("ImportSnapshot", `<importTaskId>import-snap-0abc</importTaskId><snapshotTaskDetail><status>active</status><progress>0</progress></snapshotTaskDetail>`)
	e.ec2.sequence("DescribeImportSnapshotTasks",
		`<importSnapshotTaskSet><item><importTaskId>import-snap-0abc</importTaskId><snapshotTaskDetail><status>active</status><progress>50</progress><statusMessage>downloading/converting</statusMessage></snapshotTaskDetail></item></importSnapshotTaskSet>`,
		`<importSnapshotTaskSet><item><importTaskId>import-snap-0abc</importTaskId><snapshotTaskDetail><status>completed</status><snapshotId>snap-0arm</snapshotId></snapshotTaskDetail></item></importSnapshotTaskSet>`)
	e.ec2.reply("RegisterImage", `<imageId>ami-0arm</imageId>`)
	e.ec2.reply("CreateTags", `<return>true</return>`)

	res, err := Import(context.Background(), e.cfg, disk, e.ui())
	if err != nil {
		t.Fatalf("Import: %v\n%s", err, e.output())
	}
	want := Result{AMI: "ami-0arm", SnapshotID: "snap-0arm", ImportTaskID: "import-snap-0abc", Region: "us-east-1"}
	if res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	wantForm(t, e.ec2.call(t, "ImportSnapshot", 0), map[string]string{
		"DiskContainer.Format":              "RAW",
		"DiskContainer.UserBucket.S3Bucket": testBucket,
		"DiskContainer.UserBucket.S3Key":    testKey,
		"RoleName":                          "vmimport",
	})
	wantForm(t, e.ec2.call(t, "RegisterImage", 0), map[string]string{
		"Name":                                "kiln-arm64-test",
		"Description":                         "built by kiln",
		"Architecture":                        "arm64",
		"BootMode":                            "uefi",
		"RootDeviceName":                      "/dev/xvda",
		"BlockDeviceMapping.1.DeviceName":     "/dev/xvda",
		"BlockDeviceMapping.1.Ebs.SnapshotId": "snap-0arm",
		"BlockDeviceMapping.1.Ebs.DeleteOnTermination": "true",
		"EnaSupport":         "true",
		"VirtualizationType": "hvm",
	})
	wantForm(t, e.ec2.call(t, "CreateTags", 0), map[string]string{"ResourceId.1": "ami-0arm", "ResourceId.2": "snap-0arm"})
	if !slices.Equal(e.ec2.dryRuns, []string{"ImportSnapshot"}) {
		t.Errorf("dry runs = %v, want one ImportSnapshot permission check", e.ec2.dryRuns)
	}
	if n := e.ec2.count("ImportImage") + e.ec2.count("CopyImage") + e.ec2.count("ModifyImageAttribute"); n != 0 {
		t.Errorf("snapshot mode made %d ImportImage/CopyImage/ModifyImageAttribute calls: %v", n, e.ec2.actions())
	}
	if _, still := e.object(t, testKey); still {
		t.Error("S3 object still present")
	}
}

func TestImportRenameAndLaunchPermissions(t *testing.T) {
	e := newEnv(t)
	e.cfg.AMIName = "kiln-renamed"
	e.cfg.AMIUsers = []string{"123456789012"}
	e.cfg.AMIGroups = []string{"all"}
	disk, _ := makeDisk(t, "disk.raw", 1<<20)

	e.ec2.reply("ImportImage", importStarted)
	e.ec2.reply("DescribeImportImageTasks", imageTaskDone)
	e.ec2.reply("CopyImage", `<imageId>ami-0copy</imageId>`)
	image := func(state string) string {
		return `<imagesSet><item><imageId>ami-0copy</imageId><imageState>` + state + `</imageState><rootDeviceName>/dev/sda1</rootDeviceName>` +
			`<blockDeviceMapping><item><deviceName>/dev/sdb</deviceName><ebs><snapshotId>snap-0data</snapshotId></ebs></item>` +
			`<item><deviceName>/dev/sda1</deviceName><ebs><snapshotId>snap-0copy</snapshotId></ebs></item></blockDeviceMapping></item></imagesSet>`
	}
	e.ec2.sequence("DescribeImages", image("pending"), image("available"))
	e.ec2.reply("DeregisterImage", `<return>true</return>`)
	e.ec2.reply("ModifyImageAttribute", `<return>true</return>`)

	res, err := Import(context.Background(), e.cfg, disk, e.ui())
	if err != nil {
		t.Fatalf("Import: %v\n%s", err, e.output())
	}
	if res.AMI != "ami-0copy" || res.SnapshotID != "snap-0copy" {
		t.Errorf("result = %+v, want the copy ami-0copy with root snapshot snap-0copy", res)
	}
	wantForm(t, e.ec2.call(t, "CopyImage", 0), map[string]string{
		"Name": "kiln-renamed", "SourceImageId": "ami-0123", "SourceRegion": "us-east-1",
	})
	wantForm(t, e.ec2.call(t, "DeregisterImage", 0), map[string]string{"ImageId": "ami-0123", "DeleteAssociatedSnapshots": "true"})
	wantForm(t, e.ec2.call(t, "ModifyImageAttribute", 0), map[string]string{
		"ImageId":                       "ami-0copy",
		"LaunchPermission.Add.1.UserId": "123456789012",
		"LaunchPermission.Add.2.Group":  "all",
	})
	if n := e.ec2.count("DescribeImages"); n != 2 {
		t.Errorf("DescribeImages calls = %d, want 2 (pending, available)", n)
	}
	// The intermediate AMI goes only after the copy is available.
	acts := e.ec2.actions()
	if slices.Index(acts, "DeregisterImage") < slices.Index(acts, "DescribeImages")+1 {
		t.Errorf("deregistered before the copy was available: %v", acts)
	}
}

func TestImportAccessDenied(t *testing.T) {
	for _, tc := range []struct{ code, msg string }{
		{"UnauthorizedOperation", "You are not authorized to perform this operation."},
		{"InvalidParameter", "The service role vmimport provided does not exist or does not have sufficient permissions"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			e := newEnv(t)
			disk, _ := makeDisk(t, "disk.raw", 1<<20)
			e.ec2.on("ImportImage", func(url.Values) (int, string) { return apiError(http.StatusForbidden, tc.code, tc.msg) })

			_, err := Import(context.Background(), e.cfg, disk, e.ui())
			if err == nil {
				t.Fatal("Import succeeded")
			}
			t.Logf("error: %v", err)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
				t.Errorf("error does not wrap the %s API error: %v", tc.code, err)
			}
			msg := err.Error()
			for _, s := range []string{"starting ImportImage of s3://" + testBucket + "/" + testKey, `role "vmimport"`, "vmie.amazonaws.com", "s3://" + testBucket} {
				if !strings.Contains(msg, s) {
					t.Errorf("error lacks %q: %s", s, msg)
				}
			}
			if strings.Contains(msg, testSecret) || strings.Contains(e.output(), testSecret) {
				t.Error("secret key printed")
			}
			if _, still := e.object(t, testKey); still {
				t.Error("S3 object left behind after a failed import")
			}
		})
	}
}

func TestDryRunDeniedStopsBeforeUpload(t *testing.T) {
	e := newEnv(t)
	disk, _ := makeDisk(t, "disk.raw", 1<<20)
	e.ec2.denyDryRun["ImportImage"] = true

	_, err := Import(context.Background(), e.cfg, disk, e.ui())
	if err == nil {
		t.Fatal("Import succeeded")
	}
	t.Logf("error: %v", err)
	for _, s := range []string{"before uploading", "UnauthorizedOperation", "ec2:ImportImage", `role "vmimport"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	if n := e.s3reqs.Load(); n != 0 {
		t.Errorf("%d S3 requests: the upload started although the import was going to be refused", n)
	}
	if len(e.ec2.actions()) != 0 {
		t.Errorf("EC2 calls after the refused dry run: %v", e.ec2.actions())
	}
}

func TestImportTaskDeleted(t *testing.T) {
	e := newEnv(t)
	disk, _ := makeDisk(t, "disk.raw", 1<<20)
	e.ec2.reply("ImportImage", importStarted)
	e.ec2.sequence("DescribeImportImageTasks",
		imageTask("active", "10", "validating"),
		imageTask("deleted", "", "ClientError: Unknown OS / Missing OS files."))

	_, err := Import(context.Background(), e.cfg, disk, e.ui())
	if !errors.Is(err, ErrImportFailed) {
		t.Fatalf("err = %v, want ErrImportFailed", err)
	}
	t.Logf("error: %v", err)
	var te *TaskError
	if !errors.As(err, &te) || te.Status != "deleted" || te.StatusMessage != "ClientError: Unknown OS / Missing OS files." || te.ID != "import-ami-0abc" {
		t.Errorf("TaskError = %+v", te)
	}
	for _, s := range []string{"ClientError: Unknown OS / Missing OS files", `"deleted"`, `import_mode = "snapshot"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	if n := e.ec2.count("CancelImportTask"); n != 0 {
		t.Errorf("cancelled a task AWS had already ended (%d calls)", n)
	}
	if _, still := e.object(t, testKey); still {
		t.Error("S3 object left behind")
	}
}

func TestImportTimeout(t *testing.T) {
	e := newEnv(t)
	e.cfg.ImportTimeout = "50ms"
	disk, _ := makeDisk(t, "disk.raw", 1<<20)
	e.ec2.reply("ImportImage", importStarted)
	e.ec2.reply("DescribeImportImageTasks", imageTask("active", "42", "booting"))

	_, err := Import(context.Background(), e.cfg, disk, e.ui())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	t.Logf("error: %v\n%s", err, e.output())
	for _, s := range []string{"50ms", "import_timeout", "active 42% (booting)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("timeout error lacks %q: %v", s, err)
		}
	}
	if e.ec2.count("DescribeImportImageTasks") < 2 {
		t.Errorf("polled %d times in 50ms with a 1-2ms interval", e.ec2.count("DescribeImportImageTasks"))
	}
	wantForm(t, e.ec2.call(t, "CancelImportTask", 0), map[string]string{"ImportTaskId": "import-ami-0abc"})
	if _, still := e.object(t, testKey); still {
		t.Error("S3 object left behind")
	}
}

func TestSkipCleanKeepsObject(t *testing.T) {
	e := newEnv(t)
	e.cfg.SkipClean = true
	disk, sum := makeDisk(t, "disk.raw", 1<<20)
	e.ec2.reply("ImportImage", importStarted)
	e.ec2.reply("DescribeImportImageTasks", imageTaskDone)

	if _, err := Import(context.Background(), e.cfg, disk, e.ui()); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if got, ok := e.object(t, testKey); !ok || got != sum {
		t.Errorf("object kept = %v, content matches = %v", ok, got == sum)
	}
}

func TestCancelStopsPolling(t *testing.T) {
	e := newEnv(t)
	e.cfg.pollMin, e.cfg.pollMax = 1, 1 // as fast as possible: a late poll would show
	disk, _ := makeDisk(t, "disk.raw", 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.ec2.reply("ImportImage", importStarted)
	var polls int
	e.ec2.on("DescribeImportImageTasks", func(url.Values) (int, string) {
		polls++
		if polls == 2 {
			cancel() // Ctrl-C while AWS is answering
		}
		return ok("DescribeImportImageTasks", imageTask("active", "20", "converting"))
	})

	_, err := Import(ctx, e.cfg, disk, e.ui())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := e.ec2.count("DescribeImportImageTasks"); n != 2 {
		t.Errorf("polled %d times, want 2: polling went on after cancellation", n)
	}
	wantForm(t, e.ec2.call(t, "CancelImportTask", 0), map[string]string{"ImportTaskId": "import-ami-0abc"})
	if _, still := e.object(t, testKey); still {
		t.Error("S3 object left behind after cancellation (cleanup must outlive the cancelled context)")
	}
}

func TestUploadRefusesQcow2(t *testing.T) {
	e := newEnv(t)
	disk, _ := makeDisk(t, "disk.raw", 4096)
	writeHeader(t, disk, "QFI\xfb\x00\x00\x00\x03")

	_, err := Import(context.Background(), e.cfg, disk, e.ui())
	if err == nil || !strings.Contains(err.Error(), "qcow2") {
		t.Fatalf("err = %v, want a qcow2 refusal", err)
	}
	t.Logf("error: %v", err)
	if len(e.ec2.actions()) != 0 || e.parts.Load() != 0 {
		t.Error("work started on a qcow2 disk")
	}
	if _, exists := e.object(t, testKey); exists {
		t.Error("qcow2 disk uploaded")
	}
}

func TestUploadMissingBucketHint(t *testing.T) {
	e := newEnv(t)
	e.cfg.S3BucketName = "no-such-bucket"
	disk, _ := makeDisk(t, "disk.raw", 4096)

	_, err := Import(context.Background(), e.cfg, disk, e.ui())
	if err == nil {
		t.Fatal("upload to a missing bucket succeeded")
	}
	t.Logf("error: %v", err)
	for _, s := range []string{"uploading disk.raw to s3://no-such-bucket/" + testKey, `bucket "no-such-bucket" does not exist`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	if len(e.ec2.actions()) != 0 {
		t.Errorf("EC2 called after a failed upload: %v", e.ec2.actions())
	}
}

func TestSelectDisk(t *testing.T) {
	c := Config{Format: "raw"}
	got, err := c.SelectDisk([]string{"out/disk.qcow2", "out/disk.raw", "out/other.raw"})
	if err != nil || got != "out/disk.raw" {
		t.Errorf("SelectDisk = %q, %v; want out/disk.raw", got, err)
	}
	_, err = (&Config{}).SelectDisk([]string{"out/disk.qcow2"})
	if err == nil || !strings.Contains(err.Error(), ".ova") || !strings.Contains(err.Error(), "out/disk.qcow2") {
		t.Errorf("SelectDisk without a match: %v", err)
	}
}

func TestPollErrorsRetriedThenFatal(t *testing.T) {
	e := newEnv(t)
	disk, _ := makeDisk(t, "disk.raw", 1<<20)
	e.ec2.reply("ImportImage", importStarted)
	var polls int
	e.ec2.on("DescribeImportImageTasks", func(url.Values) (int, string) {
		polls++
		if polls == 2 { // one failure between good answers is tolerated
			return apiError(http.StatusBadRequest, "InvalidParameterValue", "transient")
		}
		if polls >= 4 { // then three in a row are not
			return apiError(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation.")
		}
		return ok("DescribeImportImageTasks", imageTask("active", "10", "converting"))
	})

	_, err := Import(context.Background(), e.cfg, disk, e.ui())
	if err == nil || !strings.Contains(err.Error(), "checking import task import-ami-0abc") || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Fatalf("err = %v", err)
	}
	if n := e.ec2.count("DescribeImportImageTasks"); n != 6 {
		t.Errorf("polled %d times, want 6 (ok, fail, ok, fail x3)", n)
	}
	wantForm(t, e.ec2.call(t, "CancelImportTask", 0), map[string]string{"ImportTaskId": "import-ami-0abc"})
}
