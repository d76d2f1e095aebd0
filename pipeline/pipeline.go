// Package pipeline runs a build as a list of named, typed steps. Each step
// returns the Undo that releases what it acquired; the runner keeps those on a
// stack and unwinds it exactly once, in reverse, with a bounded time per undo.
//
// It replaces Packer's multistep: the state is a typed struct chosen by the
// caller (no string-keyed bag), errors are returned rather than stored, and
// undos take a context and return errors so cleanup can be bounded and
// reported.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Undo releases what a step acquired. It must be safe to call after the
// step's resource already went away by itself (a QEMU that exited, a file
// that was renamed into place).
type Undo func(ctx context.Context) error

// Step is one named unit of work over state S.
type Step[S any] struct {
	Name string
	Run  func(ctx context.Context, s *S) (Undo, error)
}

// EventKind says what happened to a step.
type EventKind int

const (
	Started EventKind = iota
	Finished
	Failed
	Undone
	UndoFailed
)

func (k EventKind) String() string {
	return [...]string{"started", "finished", "failed", "undone", "undo failed"}[k]
}

// Event reports progress to an observer (UI, log, benchmark timings).
type Event struct {
	Step     string
	Kind     EventKind
	Duration time.Duration // for Finished, Failed, Undone, UndoFailed
	Err      error
}

// StepError is the error of a failed step, naming the step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Runner runs steps over one state value. Use a new Runner per build.
type Runner[S any] struct {
	steps []Step[S]
	// UndoTimeout bounds each undo; zero means one minute.
	UndoTimeout time.Duration
	// Observe, if set, is called for every event, synchronously.
	Observe func(Event)

	mu     sync.Mutex
	stack  []namedUndo
	once   sync.Once
	unwind error
}

type namedUndo struct {
	name string
	undo Undo
}

// New returns a runner for steps, in order.
func New[S any](steps ...Step[S]) *Runner[S] {
	return &Runner[S]{steps: steps}
}

// Names lists the step names in order.
func (r *Runner[S]) Names() []string {
	names := make([]string, len(r.steps))
	for i, s := range r.steps {
		names[i] = s.Name
	}
	return names
}

// Run runs the steps in order until one fails or ctx is done. It does not
// unwind: the caller decides when (at once, or after -on-error=abort let a
// human look), by calling Unwind. The returned error is a *StepError.
func (r *Runner[S]) Run(ctx context.Context, s *S) error {
	for _, step := range r.steps {
		if err := ctx.Err(); err != nil {
			return &StepError{Step: step.Name, Err: fmt.Errorf("cancelled before start: %w", context.Cause(ctx))}
		}
		r.emit(Event{Step: step.Name, Kind: Started})
		start := time.Now()
		undo, err := step.Run(ctx, s)
		if undo != nil {
			// A step may fail after acquiring something; its undo still runs.
			r.mu.Lock()
			r.stack = append(r.stack, namedUndo{step.Name, undo})
			r.mu.Unlock()
		}
		if err == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if err != nil {
			r.emit(Event{Step: step.Name, Kind: Failed, Duration: time.Since(start), Err: err})
			return &StepError{Step: step.Name, Err: err}
		}
		r.emit(Event{Step: step.Name, Kind: Finished, Duration: time.Since(start)})
	}
	return nil
}

// Unwind runs the undo stack in reverse, once; later calls return the first
// result. It ignores ctx's cancellation (cleanup must happen after Ctrl-C)
// but keeps its values, and bounds each undo by UndoTimeout.
func (r *Runner[S]) Unwind(ctx context.Context) error {
	r.once.Do(func() {
		ctx = context.WithoutCancel(ctx)
		timeout := r.UndoTimeout
		if timeout <= 0 {
			timeout = time.Minute
		}
		r.mu.Lock()
		stack := r.stack
		r.stack = nil
		r.mu.Unlock()
		var errs []error
		for i := len(stack) - 1; i >= 0; i-- {
			u := stack[i]
			start := time.Now()
			err := runBounded(ctx, timeout, u.undo)
			if err != nil {
				errs = append(errs, fmt.Errorf("undo %s: %w", u.name, err))
				r.emit(Event{Step: u.name, Kind: UndoFailed, Duration: time.Since(start), Err: err})
				continue
			}
			r.emit(Event{Step: u.name, Kind: Undone, Duration: time.Since(start)})
		}
		r.unwind = errors.Join(errs...)
	})
	return r.unwind
}

// runBounded runs undo with a deadline. An undo that ignores its context is
// abandoned after the deadline (and reported) rather than hanging the exit.
func runBounded(ctx context.Context, timeout time.Duration, undo Undo) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- undo(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("did not finish within %s", timeout)
	}
}

func (r *Runner[S]) emit(ev Event) {
	if r.Observe != nil {
		r.Observe(ev)
	}
}
