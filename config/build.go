package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Template is a loaded, evaluated template: everything `kiln build` needs
// and nothing it has to look up again.
type Template struct {
	// Root is the directory of the template (path.root).
	Root string
	// Builds are the qemu builds, one per (build block, qemu source) pair,
	// in template order. Sources of other types are dropped with a warning.
	Builds []*Build
	// Warnings are non-fatal diagnostics (skipped sources, ignored
	// packer{} requirements, ...). Print them with the file map below.
	Warnings hcl.Diagnostics
	// Files maps file names to parsed files, for diagnostic printing.
	Files map[string]*hcl.File
	// Sensitive lists the values of sensitive variables (and any other
	// secret found while loading): loggers must mask them.
	Sensitive []string
	// Variables are the resolved input variables, for `kiln inspect`.
	Variables []*Variable
}

// Variable is one declared input variable after resolution.
type Variable struct {
	Name        string
	Type        string // HCL type expression as written, e.g. "string"
	Description string
	Sensitive   bool
	Value       string // display form; "<sensitive>" when Sensitive
}

// Build is one qemu source inside one build block.
type Build struct {
	// Name is Packer's build name (CoreBuild.Name): "qemu.SOURCENAME"
	// when the build block has no name, "BUILDNAME.qemu.SOURCENAME" when
	// it has one. It is what -only/-except match against and the prefix
	// of the build's output lines.
	Name      string
	BuildName string // build block's name (may be empty)
	// SourceName is the source's name as source.name sees it: the label
	// of the source block, e.g. "debian", or the `name` a nested source
	// block inside the build gives it.
	SourceName string
	SourceType string // "qemu" or "libvirt"
	Source     *QEMU
	// Libvirt is set when the build runs on libvirt: a libvirt source, or
	// a qemu source with libvirt_uri (config/libvirt.go).
	Libvirt *Libvirt
	// Provisioners run in order; each element has exactly one of the
	// typed pointers set.
	Provisioners []*Provisioner
	// ErrorCleanup is the build's error-cleanup-provisioner, run only
	// when provisioning fails. Packer allows at most one, so this has zero
	// or one element.
	ErrorCleanup []*Provisioner
	// PostProcessors: each inner slice is one chain (a post-processors
	// block, or a lone post-processor block as a chain of one).
	PostProcessors [][]*PostProcessor
	// Sensitive values that apply to this build (same as Template's).
	Sensitive []string
}

// Provisioner is a provisioner block with its meta-arguments.
type Provisioner struct {
	Type        string // "shell", "file", "shell-local", "breakpoint"
	Name        string
	PauseBefore time.Duration
	MaxRetries  int
	Timeout     time.Duration
	Only        []string
	Except      []string
	Range       hcl.Range // where the block starts, for errors

	Shell      *Shell
	File       *File
	ShellLocal *ShellLocal
	Breakpoint *Breakpoint
}

// Shell is Packer's `shell` provisioner.
type Shell struct {
	Inline            []string          `hcl:"inline,optional"`
	Script            string            `hcl:"script,optional"`
	Scripts           []string          `hcl:"scripts,optional"`
	EnvironmentVars   []string          `hcl:"environment_vars,optional"`
	Env               map[string]string `hcl:"env,optional"`
	ExecuteCommand    string            `hcl:"execute_command,optional"`
	InlineShebang     string            `hcl:"inline_shebang,optional"`
	RemoteFolder      string            `hcl:"remote_folder,optional"`
	RemoteFile        string            `hcl:"remote_file,optional"`
	RemotePath        string            `hcl:"remote_path,optional"`
	ExpectDisconnect  bool              `hcl:"expect_disconnect,optional"`
	ValidExitCodes    []int             `hcl:"valid_exit_codes,optional"`
	StartRetryTimeout string            `hcl:"start_retry_timeout,optional"`
	SkipClean         bool              `hcl:"skip_clean,optional"`
}

// File is Packer's `file` provisioner.
type File struct {
	Source      string   `hcl:"source,optional"`
	Sources     []string `hcl:"sources,optional"`
	Content     string   `hcl:"content,optional"`
	Destination string   `hcl:"destination"`
	Direction   string   `hcl:"direction,optional"` // upload (default) or download
	Generated   bool     `hcl:"generated,optional"`
}

// ShellLocal is Packer's `shell-local` provisioner (and post-processor).
type ShellLocal struct {
	Command         string            `hcl:"command,optional"`
	Inline          []string          `hcl:"inline,optional"`
	Script          string            `hcl:"script,optional"`
	Scripts         []string          `hcl:"scripts,optional"`
	EnvironmentVars []string          `hcl:"environment_vars,optional"`
	Env             map[string]string `hcl:"env,optional"`
	ExecuteCommand  []string          `hcl:"execute_command,optional"`
	InlineShebang   string            `hcl:"inline_shebang,optional"`
	ValidExitCodes  []int             `hcl:"valid_exit_codes,optional"`
}

// Breakpoint is Packer's `breakpoint` provisioner.
type Breakpoint struct {
	Note    string `hcl:"note,optional"`
	Disable bool   `hcl:"disable,optional"`
}

// PostProcessor is a post-processor block. Body is kept undecoded: each
// post-processor type decodes it itself (export issue), with EvalContext.
type PostProcessor struct {
	Type              string
	Name              string
	KeepInputArtifact bool
	Only              []string
	Except            []string
	Range             hcl.Range
	Body              hcl.Body
	EvalContext       *hcl.EvalContext
}
