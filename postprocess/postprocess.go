// Package postprocess runs a build's post-processor blocks with Packer's
// semantics: checksum, compress, manifest and shell-local.
//
// Chains work as in Packer's core (packer/build.go, CoreBuild.Run): every
// chain starts from the build's artifact; inside a chain each
// post-processor receives the previous one's artifact, and an
// intermediate artifact is deleted unless the post-processor that
// consumed it keeps it (keep_input_artifact, or a type that always keeps
// its input: checksum, manifest, shell-local). The build's own artifact is
// kept when there are no post-processors or when the first post-processor
// of any chain keeps it; otherwise it is deleted at the end.
//
// Two deliberate differences from Packer: when any post-processor fails
// (or the build is cancelled) the build's artifact is kept, where Packer
// would delete it and leave the user with nothing; and a file is never
// deleted while a returned artifact still lists it.
package postprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
)

// BuilderID is the artifact id of kiln's qemu builder. It is Packer's
// qemu builder's id, so templates and tools that check it keep working.
const BuilderID = "transcend.qemu"

// Artifact is what a build or a post-processor produced.
type Artifact struct {
	// BuilderID says what made it: BuilderID for a build, or
	// "packer.post-processor.TYPE".
	BuilderID string
	// BuildName is Packer's packer_build_name (the source's name, e.g.
	// "debian"); BuilderType is "qemu".
	BuildName, BuilderType string
	// Files are the artifact's files. Relative paths are relative to
	// Env.Dir and are recorded as given (in the manifest, for instance),
	// as Packer records the paths its builder returned.
	Files []string
	// ID is the artifact id ("VM" for a qemu build, as in Packer).
	ID string
	// Data is free-form state passed along the chain.
	Data map[string]string
}

// Env is what post-processors may use from the build and the run.
type Env struct {
	// Dir is what relative paths (artifact files, outputs, scripts)
	// resolve against: the working directory kiln was started in.
	Dir string
	// Say prints a user-visible line; nil prints nothing.
	Say func(format string, args ...any)
	// Stdout and Stderr receive shell-local output; nil discards it.
	Stdout, Stderr io.Writer
	// Progress, if set, returns a done/total byte reporter for a long
	// operation (compression, hashing).
	Progress func(label string) func(done, total int64)
	// BuildName is Packer's packer_build_name: the source's name
	// ("debian"), used in output templates, the manifest and
	// PACKER_BUILD_NAME.
	BuildName string
	// BuildTime is recorded in the manifest; zero means now.
	BuildTime time.Time
	// RunUUID identifies this kiln run (PACKER_RUN_UUID): manifest
	// entries of one run are grouped by it.
	RunUUID string
	// Force is -force: a manifest left by another run is started afresh
	// instead of appended to.
	Force bool
	// Source is the build's source reference ("qemu.debian"), which
	// post-processors' only/except lists name. Empty: not checked here
	// (the config package already dropped blocks that do not apply).
	Source string
}

func (env Env) withDefaults() (Env, error) {
	if env.Say == nil {
		env.Say = func(string, ...any) {}
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Progress == nil {
		env.Progress = func(string) func(int64, int64) { return func(int64, int64) {} }
	}
	if env.BuildTime.IsZero() {
		env.BuildTime = time.Now()
	}
	if env.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return env, fmt.Errorf("finding the current directory: %w", err)
		}
		env.Dir = wd
	}
	return env, nil
}

// path resolves an artifact or output path against Dir.
func (env Env) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(env.Dir, p)
}

// processor is one decoded post-processor block.
type processor interface {
	// run processes in and returns the new artifact and whether the
	// input is kept by default. Types that must keep their input (their
	// output lists it) return true, which keep_input_artifact = false
	// cannot override: Packer's forceOverride.
	run(ctx context.Context, in Artifact, env Env) (out Artifact, keep bool, err error)
}

// step is a decoded block with its meta-arguments.
type step struct {
	pp   *config.PostProcessor
	proc processor
}

func (s step) label() string {
	if s.pp.Name != "" && s.pp.Name != s.pp.Type {
		return fmt.Sprintf("%s (type %s)", s.pp.Name, s.pp.Type)
	}
	return s.pp.Type
}

// applies is Packer's only/except for one post-processor: exact source
// references, not globs.
func applies(pp *config.PostProcessor, source string) bool {
	if source == "" {
		return true
	}
	if len(pp.Only) > 0 {
		return slices.Contains(pp.Only, source)
	}
	return !slices.Contains(pp.Except, source)
}

// Validate decodes and checks every post-processor block, for `kiln
// validate` and before a build starts. Each diagnostic carries the
// range of the offending block or attribute.
func Validate(chains [][]*config.PostProcessor) hcl.Diagnostics {
	_, diags := decodeChains(chains, "")
	return diags
}

func decodeChains(chains [][]*config.PostProcessor, source string) ([][]step, hcl.Diagnostics) {
	var out [][]step
	var diags hcl.Diagnostics
	for _, chain := range chains {
		var steps []step
		for _, pp := range chain {
			proc, more := decode(pp)
			diags = append(diags, more...)
			if proc != nil && applies(pp, source) {
				steps = append(steps, step{pp, proc})
			}
		}
		if len(steps) > 0 {
			out = append(out, steps)
		}
	}
	return out, diags
}

// Run runs the post-processor chains on the build's artifact in and
// returns the artifacts that remain, the build's own first if it is
// kept (Packer's order). Call it after the build's output directory is
// in place. Every chain runs even if another failed; the error joins all
// failures. On a configuration error nothing runs and in is returned.
func Run(ctx context.Context, chains [][]*config.PostProcessor, in Artifact, env Env) ([]Artifact, error) {
	env, err := env.withDefaults()
	if err != nil {
		return []Artifact{in}, err
	}
	plan, diags := decodeChains(chains, env.Source)
	if diags.HasErrors() {
		return []Artifact{in}, diags
	}
	if len(plan) == 0 {
		return []Artifact{in}, nil
	}

	var (
		results      []Artifact
		errs         []error
		keepOriginal bool
		failed       bool
	)
	// The build's files are only ever removed at the end, and files of an
	// artifact already kept stay.
	protected := func() []string {
		out := slices.Clone(in.Files)
		for _, a := range results {
			out = append(out, a.Files...)
		}
		return out
	}
	for _, chain := range plan {
		prior, ok := in, true
		for i, s := range chain {
			if err := ctx.Err(); err != nil {
				errs = append(errs, fmt.Errorf("post-processor %s: not run: %w", s.label(), err))
				ok = false
				break
			}
			env.Say("Running post-processor: %s", s.label())
			out, keep, err := s.proc.run(ctx, prior, env)
			if err != nil {
				errs = append(errs, fmt.Errorf("post-processor %s: %w", s.label(), err))
				ok = false
				break
			}
			keep = keep || s.pp.KeepInputArtifact
			switch {
			case i == 0:
				keepOriginal = keepOriginal || keep
			case keep:
				results = append(results, prior)
			default:
				if err := destroy(env, prior, protected(), false); err != nil {
					errs = append(errs, fmt.Errorf("post-processor %s: removing its input: %w", s.label(), err))
				}
			}
			prior = out
		}
		if ok {
			results = append(results, prior)
		} else {
			failed = true
		}
	}

	if failed && !keepOriginal {
		env.Say("Keeping the build's artifact because a post-processor failed")
		keepOriginal = true
	}
	if keepOriginal {
		results = append([]Artifact{in}, results...)
	} else {
		var listed []string
		for _, a := range results {
			listed = append(listed, a.Files...)
		}
		env.Say("Deleting the build's artifact (no post-processor kept it)")
		if err := destroy(env, in, listed, true); err != nil {
			errs = append(errs, fmt.Errorf("removing the build's artifact: %w", err))
		}
	}
	return results, errors.Join(errs...)
}

// destroy removes a's files except those listed in keep. With pruneDirs,
// directories left empty are removed too: the build's output directory
// goes with its last file, as Packer's qemu artifact removes it.
func destroy(env Env, a Artifact, keep []string, pruneDirs bool) error {
	kept := map[string]bool{}
	for _, k := range keep {
		kept[filepath.Clean(env.path(k))] = true
	}
	var errs []error
	dirs := map[string]bool{}
	for _, f := range a.Files {
		p := filepath.Clean(env.path(f))
		if kept[p] {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		dirs[filepath.Dir(p)] = true
	}
	if pruneDirs {
		root := filepath.Clean(env.Dir)
		for d := range dirs {
			if d != root {
				_ = os.Remove(d) // fails, as intended, if anything else is in it
			}
		}
	}
	return errors.Join(errs...)
}
