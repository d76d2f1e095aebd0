// Package ui is what a person sees of a build: Packer-style lines prefixed
// with the build name ("==> qemu.debian: Starting QEMU"), streamed command
// output, progress for long transfers, and secret masking on everything
// written. Parallel builds share one Output; lines never interleave.
package ui

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Secrets masks sensitive values (passwords, keys, sensitive variables) in
// text. It is shared by the terminal output and every log.
type Secrets struct {
	mu     sync.RWMutex
	values []string
}

// Add registers values to mask. Very short values (under 3 bytes) are not
// masked: masking "a" would make every log unreadable and hides nothing.
func (s *Secrets) Add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < 3 {
			continue
		}
		s.values = append(s.values, v)
		// Multi-line secrets (private keys) may reach a log line by line.
		if strings.Contains(v, "\n") {
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) >= 16 {
					s.values = append(s.values, line)
				}
			}
		}
	}
}

// Mask returns text with every secret replaced by <sensitive>.
func (s *Secrets) Mask(text string) string {
	if s == nil {
		return text
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.values {
		text = strings.ReplaceAll(text, v, "<sensitive>")
	}
	return text
}

// MaskingWriter masks secrets in complete lines before they reach w. A
// partial line is held until its newline (or Flush), so a secret split
// across two writes is still masked.
type MaskingWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets *Secrets
	buf     bytes.Buffer
}

// NewMaskingWriter wraps w.
func NewMaskingWriter(w io.Writer, s *Secrets) *MaskingWriter {
	return &MaskingWriter{w: w, secrets: s}
}

func (m *MaskingWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf.Write(p)
	if i := bytes.LastIndexByte(m.buf.Bytes(), '\n'); i >= 0 {
		lines := string(m.buf.Next(i + 1))
		if _, err := io.WriteString(m.w, m.secrets.Mask(lines)); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes a pending partial line.
func (m *MaskingWriter) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buf.Len() == 0 {
		return nil
	}
	_, err := io.WriteString(m.w, m.secrets.Mask(m.buf.String()))
	m.buf.Reset()
	return err
}

// Output is the shared terminal.
type Output struct {
	mu      sync.Mutex
	w       io.Writer
	Secrets *Secrets
	// TTY enables in-place progress lines; otherwise progress is printed
	// every 10%.
	TTY bool
	// Timestamps prefixes each line with the time (like Packer's -timestamp-ui).
	Timestamps bool
	// Format is how lines are rendered: for people (the default), in
	// Packer's -machine-readable format, or as kiln's JSON events.
	Format Format
	// now is the clock of timestamps; tests replace it.
	now func() time.Time
}

// NewOutput writes to w, masking secrets.
func NewOutput(w io.Writer, secrets *Secrets) *Output {
	if secrets == nil {
		secrets = &Secrets{}
	}
	return &Output{w: w, Secrets: secrets}
}

func (o *Output) line(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Timestamps {
		s = o.clock().Format(time.RFC3339) + " " + s
	}
	io.WriteString(o.w, o.Secrets.Mask(s)+"\n")
}

func (o *Output) clock() time.Time {
	if o.now != nil {
		return o.now()
	}
	return time.Now()
}

// ui renders one line of text of build (empty: the run as a whole) at
// level "say", "message" or "error". human is the line as a person sees it
// ("==> build: text"); Packer's machine-readable format carries that same
// text, while JSON events carry the bare text and the build separately.
func (o *Output) ui(build, level, text, human string) {
	switch o.Format {
	case MachineReadable:
		o.Machine("", "ui", level, human)
	case JSON:
		o.Event(Event{Build: build, Type: EventUI, Level: level, Message: text})
	default:
		o.line(human)
	}
}

// Build returns the UI of one build, prefixing its lines with name.
func (o *Output) Build(name string) *Build {
	return &Build{out: o, name: name}
}

// Say prints a top-level line without a build prefix.
func (o *Output) Say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	o.ui("", "say", msg, msg)
}

// Error prints a top-level error line. People see it as Say does; the
// machine formats mark it as an error.
func (o *Output) Error(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	o.ui("", "error", msg, msg)
}

// Build is one build's view of the terminal. Log, if set, receives a copy
// of every line (the build's log file).
type Build struct {
	out  *Output
	name string
	Log  func(msg string)
}

// Name is the build's prefix.
func (b *Build) Name() string { return b.name }

// Say prints a step-level line: "==> NAME: text".
func (b *Build) Say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.out.ui(b.name, "say", msg, "==> "+b.name+": "+msg)
	if b.Log != nil {
		b.Log(msg)
	}
}

// Message prints a detail line: "    NAME: text".
func (b *Build) Message(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.out.ui(b.name, "message", msg, "    "+b.name+": "+msg)
	if b.Log != nil {
		b.Log(msg)
	}
}

// Error prints an error line: "==> NAME: error: text".
func (b *Build) Error(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.out.ui(b.name, "error", msg, "==> "+b.name+": error: "+msg)
	if b.Log != nil {
		b.Log("error: " + msg)
	}
}

// Output is the terminal this build writes to.
func (b *Build) Output() *Output { return b.out }

// Writer returns a line writer that prints each line as a Message; use it
// for streamed command output. Close (or Flush) it to print a last partial
// line.
func (b *Build) Writer() *LineWriter { return &LineWriter{emit: func(s string) { b.Message("%s", s) }} }

// LineWriter calls emit once per complete line.
type LineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	emit func(string)
}

func (l *LineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := string(l.buf.Next(i + 1))
		l.emit(strings.TrimRight(line, "\r\n"))
	}
	return len(p), nil
}

// Flush emits a pending partial line.
func (l *LineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.emit(strings.TrimRight(l.buf.String(), "\r\n"))
		l.buf.Reset()
	}
}

// Close flushes.
func (l *LineWriter) Close() error { l.Flush(); return nil }
