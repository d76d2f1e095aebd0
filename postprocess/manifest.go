package postprocess

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/internal/fsx"
)

// manifest is Packer's manifest post-processor: it appends one entry per
// build to a JSON file and passes its input through.
type manifest struct {
	Output     string            `hcl:"output,optional"`
	StripPath  bool              `hcl:"strip_path,optional"`
	StripTime  bool              `hcl:"strip_time,optional"`
	CustomData map[string]string `hcl:"custom_data,optional"`
}

// manifestEntry is one element of "builds", with Packer's field names
// and order.
type manifestEntry struct {
	Name          string            `json:"name"`
	BuilderType   string            `json:"builder_type"`
	BuildTime     int64             `json:"build_time,omitempty"`
	Files         []manifestFile    `json:"files"`
	ArtifactID    string            `json:"artifact_id"`
	PackerRunUUID string            `json:"packer_run_uuid"`
	CustomData    map[string]string `json:"custom_data"`
}

type manifestFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// manifestMu serialises read-modify-write of manifests between parallel
// builds of one kiln run, which commonly share packer-manifest.json.
var manifestMu sync.Mutex

func decodeManifest(pp *config.PostProcessor) (processor, hcl.Diagnostics) {
	m := &manifest{}
	diags := decodeBody(pp, m)
	if diags.HasErrors() {
		return nil, diags
	}
	if m.Output == "" {
		m.Output = "packer-manifest.json"
	}
	diags = append(diags, checkTemplate(pp, "output", m.Output, "BuildName", "BuilderType")...)
	if diags.HasErrors() {
		return nil, diags
	}
	return m, diags
}

func (m *manifest) run(ctx context.Context, in Artifact, env Env) (Artifact, bool, error) {
	out, err := render(m.Output, map[string]string{"BuildName": env.BuildName, "BuilderType": in.BuilderType}, env)
	if err != nil {
		return Artifact{}, true, fmt.Errorf("output: %w", err)
	}
	e := manifestEntry{
		Name:          env.BuildName,
		BuilderType:   in.BuilderType,
		BuildTime:     env.BuildTime.Unix(),
		Files:         []manifestFile{},
		ArtifactID:    in.ID,
		PackerRunUUID: env.RunUUID,
		CustomData:    m.CustomData,
	}
	if m.StripTime {
		e.BuildTime = 0
	}
	for _, f := range in.Files {
		mf := manifestFile{Name: f}
		if fi, err := os.Stat(env.path(f)); err == nil {
			mf.Size = fi.Size()
		}
		if m.StripPath {
			mf.Name = filepath.Base(f)
		}
		e.Files = append(e.Files, mf)
	}
	if err := appendManifest(env.path(out), e, env); err != nil {
		return Artifact{}, true, err
	}
	env.Say("Manifest written to %s", out)
	// The manifest records the artifact; it never deletes it.
	return in, true, nil
}

// appendManifest adds e to the manifest at p. Existing entries are kept
// as raw JSON, so fields another tool added survive.
// With -force, a manifest from another run is started afresh, as Packer
// does.
func appendManifest(p string, e manifestEntry, env Env) error {
	manifestMu.Lock()
	defer manifestMu.Unlock()

	var file struct {
		Builds      []json.RawMessage `json:"builds"`
		LastRunUUID string            `json:"last_run_uuid"`
	}
	old, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading manifest %s: %w", p, err)
	case len(bytes.TrimSpace(old)) > 0:
		if err := json.Unmarshal(old, &file); err != nil {
			return fmt.Errorf("manifest %s is not valid JSON (fix or remove it): %w", p, err)
		}
	}
	if env.Force && file.LastRunUUID != env.RunUUID {
		file.Builds = nil
	}
	entry, err := json.Marshal(e)
	if err != nil {
		return err
	}
	file.Builds = append(file.Builds, entry)
	file.LastRunUUID = env.RunUUID
	data, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := fsx.WriteFile(p, data, 0o664); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	back, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(back, data) {
		return fmt.Errorf("manifest %s reads back differently from what was written (%v)", p, err)
	}
	return nil
}
