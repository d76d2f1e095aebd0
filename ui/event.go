package ui

import (
	"bytes"
	"encoding/json"
	"time"
)

// Event types of the --json stream. The names and the fields of each type
// (see Event.MarshalJSON and README.md) are a stable interface: add, never
// rename or remove.
const (
	EventUI          = "ui"           // a line of text: level, message
	EventStepStart   = "step.start"   // step
	EventStepFinish  = "step.finish"  // step, success, duration_ms, error
	EventProgress    = "progress"     // label, done, total, pct
	EventArtifact    = "artifact"     // builder_id, id, path, size
	EventError       = "error"        // error, and file/line/column for template errors
	EventBuildFinish = "build.finish" // success, duration_ms, error
)

// Event is one object of kiln's --json stream.
type Event struct {
	Time  time.Time // set by Output.Event when zero
	Build string    // the build's name; empty for the run as a whole
	Type  string

	Level   string // ui: say, message or error
	Message string // ui

	Step     string        // step.start, step.finish
	Success  bool          // step.finish, build.finish
	Duration time.Duration // step.finish, build.finish
	Err      string        // step.finish, build.finish (when failed), error

	// error from a template diagnostic: where it is (Line 0: unknown).
	File         string
	Line, Column int

	Label string  // progress
	Done  int64   // progress: bytes done; negative: the tool reports only a percentage
	Total int64   // progress: bytes in all; zero or negative: unknown
	Pct   float64 // progress: 0 to 100; negative: unknown

	BuilderID  string // artifact: what made it (transcend.qemu, packer.post-processor.checksum...)
	ArtifactID string // artifact: its id ("VM" for a qemu build)
	Path       string // artifact: absolute path of one of its files; empty for a file-less artifact
	Size       int64  // artifact: the file's size in bytes
}

// field is one key and value of an event object, in output order.
type field struct {
	k string
	v any
}

// MarshalJSON writes the common fields (time, build, type) and then the
// fields of the event's type, each always present (null when it does not
// apply, e.g. "error" of a step that succeeded), so that consumers can rely
// on the keys of a type.
func (e Event) MarshalJSON() ([]byte, error) {
	fs := []field{{"time", e.Time.UTC().Format(time.RFC3339Nano)}, {"build", e.Build}, {"type", e.Type}}
	errOrNull := func() any {
		if e.Err == "" {
			return nil
		}
		return e.Err
	}
	switch e.Type {
	case EventUI:
		fs = append(fs, field{"level", e.Level}, field{"message", e.Message})
	case EventStepStart:
		fs = append(fs, field{"step", e.Step})
	case EventStepFinish:
		fs = append(fs, field{"step", e.Step}, field{"success", e.Success}, field{"duration_ms", e.Duration.Milliseconds()}, field{"error", errOrNull()})
	case EventProgress:
		var done, total, pct any
		if e.Done >= 0 {
			done = e.Done
		}
		if e.Total > 0 {
			total = e.Total
		}
		if e.Pct >= 0 {
			pct = roundPct(e.Pct)
		}
		fs = append(fs, field{"label", e.Label}, field{"done", done}, field{"total", total}, field{"pct", pct})
	case EventArtifact:
		var path, size any
		if e.Path != "" {
			path, size = e.Path, e.Size
		}
		fs = append(fs, field{"builder_id", e.BuilderID}, field{"id", e.ArtifactID}, field{"path", path}, field{"size", size})
	case EventError:
		fs = append(fs, field{"error", e.Err})
		if e.File != "" {
			fs = append(fs, field{"file", e.File}, field{"line", e.Line}, field{"column", e.Column})
		}
	case EventBuildFinish:
		fs = append(fs, field{"success", e.Success}, field{"duration_ms", e.Duration.Milliseconds()}, field{"error", errOrNull()})
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := encode(&b, f.k); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := encode(&b, f.v); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// encode writes v without HTML escaping: "<sensitive>" stays readable.
func encode(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

func roundPct(p float64) float64 {
	return float64(int64(p*10+0.5)) / 10
}

// Event writes ev as one line of JSON. It writes only in JSON format, so
// callers can emit events unconditionally. Every text field is masked.
func (o *Output) Event(ev Event) {
	if o.Format != JSON {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = o.clock()
	}
	for _, s := range []*string{&ev.Message, &ev.Err, &ev.Label, &ev.Path, &ev.Step, &ev.File} {
		*s = o.Secrets.Mask(*s)
	}
	line, err := ev.MarshalJSON()
	if err != nil {
		// Only strings, numbers and booleans go in; this cannot fail.
		panic(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write(append(line, '\n'))
}
