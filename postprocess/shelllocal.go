package postprocess

import (
	"context"
	"maps"
	"runtime"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/provision"
)

// shellLocal is Packer's shell-local post-processor: the shell-local
// provisioner's options plus only_on. It runs provision's shell-local
// implementation and passes its input artifact through.
type shellLocal struct {
	Command         string            `hcl:"command,optional"`
	Inline          []string          `hcl:"inline,optional"`
	Script          string            `hcl:"script,optional"`
	Scripts         []string          `hcl:"scripts,optional"`
	EnvironmentVars []string          `hcl:"environment_vars,optional"`
	Env             map[string]string `hcl:"env,optional"`
	ExecuteCommand  []string          `hcl:"execute_command,optional"`
	InlineShebang   string            `hcl:"inline_shebang,optional"`
	ValidExitCodes  []int             `hcl:"valid_exit_codes,optional"`
	OnlyOn          []string          `hcl:"only_on,optional"`
}

func decodeShellLocal(pp *config.PostProcessor) (processor, hcl.Diagnostics) {
	s := &shellLocal{}
	diags := decodeBody(pp, s)
	if diags.HasErrors() {
		return nil, diags
	}
	set := 0
	for _, b := range []bool{s.Command != "", len(s.Inline) > 0, s.Script != "", len(s.Scripts) > 0} {
		if b {
			set++
		}
	}
	if set != 1 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "shell-local needs exactly one of command, inline, script or scripts",
			Subject:  pp.Range.Ptr(),
		})
		return nil, diags
	}
	return s, diags
}

func (s *shellLocal) run(ctx context.Context, in Artifact, env Env) (Artifact, bool, error) {
	if len(s.OnlyOn) > 0 && !slices.Contains(s.OnlyOn, runtime.GOOS) {
		env.Say("Skipping shell-local: only_on does not include %s", runtime.GOOS)
		return in, true, nil
	}
	execute := s.ExecuteCommand
	if len(execute) == 1 {
		// Packer's post-processor once took execute_command as one
		// string run by "sh -c"; a one-element list still means that.
		execute = []string{"sh", "-c", execute[0]}
	}
	// Packer gives the script no way to find the artifact; kiln adds
	// KILN_ARTIFACT_FILES (space-separated, as the artifact lists them:
	// relative paths are relative to the script's working directory) and
	// KILN_ARTIFACT_ID. The template's own variables of those names win.
	vars := map[string]string{}
	for k, v := range map[string]string{"KILN_ARTIFACT_FILES": strings.Join(in.Files, " "), "KILN_ARTIFACT_ID": in.ID} {
		if !slices.ContainsFunc(s.EnvironmentVars, func(kv string) bool { return strings.HasPrefix(kv, k+"=") }) {
			vars[k] = v
		}
	}
	maps.Copy(vars, s.Env)
	p := &config.Provisioner{
		Type: "shell-local",
		ShellLocal: &config.ShellLocal{
			Command:         s.Command,
			Inline:          s.Inline,
			Script:          s.Script,
			Scripts:         s.Scripts,
			EnvironmentVars: s.EnvironmentVars,
			Env:             vars,
			ExecuteCommand:  execute,
			InlineShebang:   s.InlineShebang,
			ValidExitCodes:  s.ValidExitCodes,
		},
	}
	err := provision.Run(ctx, p, provision.Env{
		BuildName:   env.BuildName,
		BuilderType: in.BuilderType,
		Say:         env.Say,
		Stdout:      env.Stdout,
		Stderr:      env.Stderr,
		Dir:         env.Dir,
	})
	if err != nil {
		return Artifact{}, true, err
	}
	// Packer forces shell-local to keep its input: its output is the
	// input, so deleting one deletes the other.
	return in, true, nil
}
