package main

import (
	"context"

	"errors"
	"flag"
	"fmt"
	"github.com/google/uuid"
	"github.com/hashicorp/hcl/v2"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnbuild/kiln/builder"
	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/download"
	"github.com/kilnbuild/kiln/pipeline"
	"github.com/kilnbuild/kiln/postprocess"
	"github.com/kilnbuild/kiln/ui"
)

// templateFlags are the flags every template command shares (Packer's).
type templateFlags struct {
	vars     map[string]string
	varFiles []string
	only     []string
	except   []string
	// out, if set, also receives diagnostics in the machine formats.
	out *ui.Output
}

func (t *templateFlags) register(fs *flag.FlagSet) {
	t.vars = map[string]string{}
	fs.Func("var", "set a template variable: -var 'name=value' (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("-var wants name=value, got %q", s)
		}
		t.vars[k] = v
		return nil
	})
	fs.Func("var-file", "load variables from a .pkrvars.hcl file (repeatable)", func(s string) error {
		t.varFiles = append(t.varFiles, s)
		return nil
	})
	fs.Func("only", "build only these builds, comma-separated globs (e.g. 'qemu.*')", func(s string) error {
		t.only = append(t.only, splitList(s)...)
		return nil
	})
	fs.Func("except", "skip these builds, comma-separated globs", func(s string) error {
		t.except = append(t.except, splitList(s)...)
		return nil
	})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// load parses the template named by the single positional argument,
// prints diagnostics, and applies -only/-except.
func (t *templateFlags) load(fs *flag.FlagSet, stderr io.Writer) (*config.Template, []*config.Build, error) {
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, nil, fmt.Errorf("expected one template file or directory, got %d arguments", fs.NArg())
	}
	tpl, diags := config.Load(fs.Arg(0), config.LoadOptions{Vars: t.vars, VarFiles: t.varFiles, Env: os.Environ()})
	if diags.HasErrors() {
		// diags holds the warnings too.
		reportDiags(t.out, stderr, tpl.Files, diags)
		return nil, nil, errReported
	}
	if len(tpl.Warnings) > 0 {
		reportDiags(t.out, stderr, tpl.Files, tpl.Warnings)
	}
	builds, err := config.Filter(tpl.Builds, t.only, t.except)
	if err != nil {
		return nil, nil, err
	}
	// Post-processor blocks are decoded by their own package; check them
	// now so a typo fails before a long build, not after it.
	var ppDiags hcl.Diagnostics
	for _, b := range builds {
		ppDiags = append(ppDiags, postprocess.Validate(b.PostProcessors)...)
	}
	if ppDiags.HasErrors() {
		reportDiags(t.out, stderr, tpl.Files, ppDiags)
		return nil, nil, errReported
	}
	return tpl, builds, nil
}

func cmdBuild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf templateFlags
	tf.register(fs)
	var of outputFlags
	of.register(fs, true)
	force := fs.Bool("force", false, "replace an existing output directory (only once the new build succeeded)")
	onError := fs.String("on-error", "cleanup", "what to do when a build fails: cleanup, or abort (keep the VM running and its disk for inspection until Ctrl-C)")
	parallel := fs.Int("parallel-builds", 0, "how many builds run at once; 0 means all")
	timestamps := fs.Bool("timestamp-ui", false, "prefix each line of output with the time")
	fs.Bool("color", true, "accepted for Packer compatibility; kiln prints no colour codes")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: kiln build [options] TEMPLATE\n\n  Build the qemu sources of TEMPLATE (a .pkr.hcl file or a directory of them).\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	// Secrets are added once the template is loaded; the Output exists
	// before so that template errors reach the machine formats too.
	secrets := &ui.Secrets{}
	out, err := of.output(stdout, secrets)
	if err != nil {
		return err
	}
	defer func() { reportErr(out, err) }()
	tf.out = out
	if *onError != "cleanup" && *onError != "abort" {
		return fmt.Errorf("-on-error must be cleanup or abort, not %q (ask and run-cleanup-provisioner are not supported)", *onError)
	}
	tpl, builds, err := tf.load(fs, stderr)
	if err != nil {
		return err
	}
	if len(builds) == 0 {
		return errors.New("no qemu builds to run (check -only/-except and the template's build blocks)")
	}
	secrets.Add(tpl.Sensitive...)
	for _, b := range builds {
		secrets.Add(b.Source.SSHPassword, b.Source.VNCPassword)
	}
	if out.Format == ui.Human {
		out.TTY = isTerminal(stdout)
		out.Timestamps = *timestamps
	}
	debug, closeDebug, err := debugLog(secrets, stderr)
	if err != nil {
		return err
	}
	defer closeDebug()

	cwd, _ := os.Getwd()
	cacheDir, err := download.DefaultCacheDir(nil)
	if err != nil {
		return err
	}
	limit := *parallel
	if limit <= 0 {
		limit = len(builds)
	}
	sem := make(chan struct{}, limit)
	results := make([]*builder.Result, len(builds))
	artifacts := make([][]postprocess.Artifact, len(builds))
	errs := make([]error, len(builds))
	took := make([]time.Duration, len(builds))
	var wg sync.WaitGroup
	start := time.Now()
	for i, b := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t0 := time.Now()
			defer func() { took[i] = time.Since(t0) }()
			results[i], artifacts[i], errs[i] = runOne(ctx, b, builder.Options{
				Force: *force, OnError: *onError, Dir: cwd, Env: os.Environ(), Stdin: stdin,
				Secrets: secrets, CacheDir: cacheDir, BootScreens: debug != io.Discard && debug != nil,
			}, out, debug)
		}()
	}
	wg.Wait()
	out.Say("==> Wait completed after %s", time.Since(start).Round(time.Millisecond))
	failed := 0
	for i, b := range builds {
		if errs[i] != nil {
			failed++
			out.Error("Build '%s' errored after %s: %v", b.Name, took[i].Round(time.Millisecond), errs[i])
		}
	}
	if failed > 0 {
		out.Machine("", "error-count", strconv.Itoa(failed))
		for i, b := range builds {
			if errs[i] != nil {
				out.Machine(b.Name, "error", errs[i].Error())
			}
		}
	}
	out.Say("")
	out.Say("==> Builds finished. The artifacts of successful builds are:")
	for i, b := range builds {
		if results[i] == nil {
			continue
		}
		machineArtifacts(out, b.Name, artifacts[i], cwd)
		out.Say("--> %s: VM files in directory: %s", b.Name, relPath(cwd, results[i].OutputDir))
		for _, a := range results[i].Artifacts {
			out.Say("    %s (%s)", relPath(cwd, a.Path), ui.Bytes(a.Size))
		}
	}
	if failed > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %d of %d builds did not finish; everything they started was cleaned up", failed, len(builds))
		}
		return fmt.Errorf("%d of %d builds failed", failed, len(builds))
	}
	return nil
}

// runOne runs one build with its own log directory and debug log file. It
// returns the build's result and its final artifacts (what the
// post-processors left, or the build's own).
func runOne(ctx context.Context, b *config.Build, opts builder.Options, out *ui.Output, debug io.Writer) (_ *builder.Result, _ []postprocess.Artifact, err error) {
	u := out.Build(b.Name)
	start := time.Now()
	defer func() {
		ev := ui.Event{Build: b.Name, Type: ui.EventBuildFinish, Success: err == nil, Duration: time.Since(start)}
		if err != nil {
			ev.Err = err.Error()
			out.Event(ui.Event{Build: b.Name, Type: ui.EventError, Err: ev.Err})
		}
		out.Event(ev)
	}()
	logDir, err := buildLogDir(b.Name)
	if err != nil {
		return nil, nil, err
	}
	logFile, err := os.Create(filepath.Join(logDir, "kiln.log"))
	if err != nil {
		return nil, nil, fmt.Errorf("creating build log: %w", err)
	}
	defer logFile.Close()
	mw := ui.NewMaskingWriter(io.MultiWriter(logFile, debug), opts.Secrets)
	defer mw.Flush()
	log := slog.New(slog.NewTextHandler(mw, &slog.HandlerOptions{Level: slog.LevelDebug})).With("build", b.Name)
	u.Log = func(msg string) { log.Info(msg) }
	opts.UI, opts.Log, opts.LogDir = u, log, logDir
	opts.Observe = func(ev pipeline.Event) { stepEvent(out, b.Name, ev) }
	u.Say("Build log and serial console: %s", logDir)
	res, err := builder.Run(ctx, b, opts)
	if err != nil {
		u.Error("%v", err)
		log.Error("build failed", "err", err)
		return nil, nil, err
	}
	arts := []postprocess.Artifact{buildArtifact(b, res, opts.Dir)}
	if len(b.PostProcessors) > 0 {
		// Post-processors are not pipeline steps, but they can take long
		// (compression, uploads): the event stream times them as one.
		stepEvent(out, b.Name, pipeline.Event{Step: stepPostProcessors, Kind: pipeline.Started})
		t0 := time.Now()
		arts, err = runPostProcessors(ctx, b, res, opts, u, start)
		ev := pipeline.Event{Step: stepPostProcessors, Kind: pipeline.Finished, Duration: time.Since(t0)}
		if err != nil {
			ev.Kind, ev.Err = pipeline.Failed, err
		}
		stepEvent(out, b.Name, ev)
		if err != nil {
			u.Error("%v", err)
			log.Error("post-processors failed", "err", err)
			return nil, nil, err
		}
	}
	artifactEvents(out, b.Name, arts, opts.Dir)
	u.Say("Build finished after %s", time.Since(start).Round(time.Millisecond))
	return res, arts, nil
}

// buildLogDir makes the per-build log directory: KILN_LOG_DIR, else
// $XDG_STATE_HOME/kiln/logs, else ~/.local/state/kiln/logs.
func buildLogDir(name string) (string, error) {
	base := os.Getenv("KILN_LOG_DIR")
	if base == "" {
		state := os.Getenv("XDG_STATE_HOME")
		if state == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("finding a log directory (set KILN_LOG_DIR): %w", err)
			}
			state = filepath.Join(home, ".local", "state")
		}
		base = filepath.Join(state, "kiln", "logs")
	}
	dir := filepath.Join(base, time.Now().Format("20060102-150405")+"-"+strings.NewReplacer("/", "_", " ", "_").Replace(name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating build log directory: %w", err)
	}
	return dir, nil
}

// debugLog is the KILN_LOG sink: stderr, or KILN_LOG_PATH.
func debugLog(secrets *ui.Secrets, stderr io.Writer) (io.Writer, func(), error) {
	path := os.Getenv("KILN_LOG_PATH")
	if path == "" && os.Getenv("KILN_LOG") == "" {
		return io.Discard, func() {}, nil
	}
	if path == "" {
		return stderr, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening KILN_LOG_PATH: %w", err)
	}
	return f, func() { f.Close() }, nil
}

func relPath(base, p string) string {
	if r, err := filepath.Rel(base, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// runUUID identifies this kiln run in post-processor manifests
// (Packer's packer_run_uuid).
var runUUID = uuid.NewString()

// buildArtifact is the build's own artifact, its files relative to the
// working directory as Packer records them.
func buildArtifact(b *config.Build, res *builder.Result, dir string) postprocess.Artifact {
	a := postprocess.Artifact{BuilderID: postprocess.BuilderID, BuildName: b.SourceName, BuilderType: "qemu", ID: "VM",
		Data: map[string]string{"output_directory": relPath(dir, res.OutputDir)}}
	for _, f := range res.Artifacts {
		a.Files = append(a.Files, relPath(dir, f.Path))
	}
	return a
}

// runPostProcessors runs the build's post-processor chains on its output
// files and returns the artifacts that remain.
func runPostProcessors(ctx context.Context, b *config.Build, res *builder.Result, opts builder.Options, u *ui.Build, start time.Time) ([]postprocess.Artifact, error) {
	in := buildArtifact(b, res, opts.Dir)
	out, errw := u.Writer(), u.Writer()
	defer out.Flush()
	defer errw.Flush()
	arts, err := postprocess.Run(ctx, b.PostProcessors, in, postprocess.Env{
		Dir: opts.Dir, Say: u.Say, Stdout: out, Stderr: errw, Progress: u.Progress,
		BuildName: b.SourceName, BuildTime: start, RunUUID: runUUID, Force: opts.Force,
	})
	if err != nil {
		return nil, fmt.Errorf("post-processors: %w", err)
	}
	for _, a := range arts {
		u.Message("post-processor artifact %s: %s", a.ID, strings.Join(a.Files, " "))
	}
	return arts, nil
}
