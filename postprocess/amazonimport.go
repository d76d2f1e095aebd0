package postprocess

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/export/ami"
)

// amazonImport is Packer's amazon-import: the disk goes to S3, then EC2
// VM Import turns it into an AMI. The artifact becomes the AMI
// ("REGION:ami-..."), as in Packer; the input files are kept.
type amazonImport struct{ cfg ami.Config }

func decodeAmazonImport(pp *config.PostProcessor) (processor, hcl.Diagnostics) {
	a := &amazonImport{}
	diags := decodeBody(pp, &a.cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	if err := a.cfg.Prepare(); err != nil {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid amazon-import post-processor",
			Detail: err.Error(), Subject: pp.Range.Ptr()})
	}
	return a, diags
}

func (a *amazonImport) run(ctx context.Context, in Artifact, env Env) (Artifact, bool, error) {
	var files []string
	for _, f := range in.Files {
		files = append(files, env.path(f))
	}
	disk, err := a.cfg.SelectDisk(files)
	if err != nil {
		return Artifact{}, true, err
	}
	ui := ami.UI{Say: env.Say, Progress: env.Progress}
	res, err := ami.Import(ctx, a.cfg, disk, ui)
	if err != nil {
		return Artifact{}, true, fmt.Errorf("importing %s into EC2: %w", disk, err)
	}
	return Artifact{
		BuilderID: "mitchellh.amazon", BuildName: in.BuildName, BuilderType: in.BuilderType,
		ID:   res.Region + ":" + res.AMI,
		Data: map[string]string{"ami": res.AMI, "snapshot": res.SnapshotID, "import_task": res.ImportTaskID},
	}, true, nil
}
