package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kilnbuild/kiln/pipeline"
	"github.com/kilnbuild/kiln/postprocess"
	"github.com/kilnbuild/kiln/ui"
)

// stepPostProcessors is the step name the event stream gives the
// post-processor chains, which run after the builder's pipeline.
const stepPostProcessors = "post-processors"

// stepEvent turns a pipeline event into a --json step event. Undo events
// are left to the build log: they are cleanup, not progress.
func stepEvent(out *ui.Output, build string, ev pipeline.Event) {
	switch ev.Kind {
	case pipeline.Started:
		out.Event(ui.Event{Build: build, Type: ui.EventStepStart, Step: ev.Step})
	case pipeline.Finished, pipeline.Failed:
		e := ui.Event{Build: build, Type: ui.EventStepFinish, Step: ev.Step, Success: ev.Kind == pipeline.Finished, Duration: ev.Duration}
		if ev.Err != nil {
			e.Err = ev.Err.Error()
		}
		out.Event(e)
	}
}

// abs resolves an artifact file (relative to dir, as Packer records them).
func abs(dir, f string) string {
	if filepath.IsAbs(f) {
		return f
	}
	return filepath.Join(dir, f)
}

// artifactEvents emits one artifact event per file of each artifact, with
// its absolute path and its size now, or one without a path for an
// artifact that has no files (an imported AMI).
func artifactEvents(out *ui.Output, build string, arts []postprocess.Artifact, dir string) {
	if out.Format != ui.JSON {
		return
	}
	for _, a := range arts {
		ev := ui.Event{Build: build, Type: ui.EventArtifact, BuilderID: a.BuilderID, ArtifactID: a.ID}
		if len(a.Files) == 0 {
			out.Event(ev)
			continue
		}
		for _, f := range a.Files {
			ev.Path = abs(dir, f)
			ev.Size = 0
			if fi, err := os.Stat(ev.Path); err == nil {
				ev.Size = fi.Size()
			}
			out.Event(ev)
		}
	}
}

// machineArtifacts prints a build's artifacts as Packer's machine-readable
// artifact-count and artifact lines.
func machineArtifacts(out *ui.Output, build string, arts []postprocess.Artifact, dir string) {
	if out.Format != ui.MachineReadable {
		return
	}
	out.Machine(build, "artifact-count", strconv.Itoa(len(arts)))
	for i, a := range arts {
		n := strconv.Itoa(i)
		out.Machine(build, "artifact", n, "builder-id", a.BuilderID)
		out.Machine(build, "artifact", n, "id", a.ID)
		out.Machine(build, "artifact", n, "string", artifactString(a))
		out.Machine(build, "artifact", n, "files-count", strconv.Itoa(len(a.Files)))
		for j, f := range a.Files {
			out.Machine(build, "artifact", n, "file", strconv.Itoa(j), f)
		}
		out.Machine(build, "artifact", n, "end")
	}
}

// artifactString is the artifact's one-line description (Packer's
// Artifact.String).
func artifactString(a postprocess.Artifact) string {
	if a.BuilderID == postprocess.BuilderID && a.Data["output_directory"] != "" {
		return "VM files in directory: " + a.Data["output_directory"]
	}
	if len(a.Files) == 0 {
		return a.ID
	}
	return a.ID + ": " + strings.Join(a.Files, ", ")
}
