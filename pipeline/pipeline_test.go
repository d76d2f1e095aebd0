package pipeline

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type state struct{ log []string }

func step(name string, fail bool) Step[state] {
	return Step[state]{Name: name, Run: func(ctx context.Context, s *state) (Undo, error) {
		s.log = append(s.log, "run "+name)
		undo := func(ctx context.Context) error {
			s.log = append(s.log, "undo "+name)
			return nil
		}
		if fail {
			return undo, errors.New("boom")
		}
		return undo, nil
	}}
}

func TestUndoReverseOnceIncludingFailedStep(t *testing.T) {
	s := &state{}
	r := New(step("a", false), step("b", false), step("c", true), step("d", false))
	err := r.Run(context.Background(), s)
	var se *StepError
	if !errors.As(err, &se) || se.Step != "c" {
		t.Fatalf("want StepError for c, got %v", err)
	}
	if err := r.Unwind(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Unwind(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"run a", "run b", "run c", "undo c", "undo b", "undo a"}
	if !reflect.DeepEqual(s.log, want) {
		t.Fatalf("log = %q, want %q", s.log, want)
	}
}

func TestCancelStopsBeforeNextStepAndUnwindStillRuns(t *testing.T) {
	s := &state{}
	ctx, cancel := context.WithCancel(context.Background())
	r := New(step("a", false), Step[state]{Name: "cancel", Run: func(context.Context, *state) (Undo, error) {
		cancel()
		return nil, nil
	}}, step("never", false))
	err := r.Run(ctx, s)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("want cancellation error, got %v", err)
	}
	// Unwind with the cancelled context: undos must still run.
	if err := r.Unwind(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"run a", "undo a"}
	if !reflect.DeepEqual(s.log, want) {
		t.Fatalf("log = %q, want %q", s.log, want)
	}
}

func TestUndoErrorsJoinedAndBounded(t *testing.T) {
	s := &state{}
	hang := Step[state]{Name: "hang", Run: func(context.Context, *state) (Undo, error) {
		return func(ctx context.Context) error { select {} }, nil
	}}
	bad := Step[state]{Name: "bad", Run: func(context.Context, *state) (Undo, error) {
		return func(ctx context.Context) error { return errors.New("undo broke") }, nil
	}}
	r := New(step("a", false), hang, bad)
	r.UndoTimeout = 50 * time.Millisecond
	var events []string
	r.Observe = func(ev Event) { events = append(events, ev.Step+" "+ev.Kind.String()) }
	if err := r.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := r.Unwind(context.Background())
	if time.Since(start) > 2*time.Second {
		t.Fatalf("unwind not bounded: %s", time.Since(start))
	}
	if err == nil || !strings.Contains(err.Error(), "undo bad: undo broke") || !strings.Contains(err.Error(), "undo hang: did not finish") {
		t.Fatalf("unexpected unwind error: %v", err)
	}
	if s.log[len(s.log)-1] != "undo a" {
		t.Fatalf("a not undone after failures: %q", s.log)
	}
	wantTail := []string{"bad undo failed", "hang undo failed", "a undone"}
	if got := events[len(events)-3:]; !reflect.DeepEqual(got, wantTail) {
		t.Fatalf("events tail = %q, want %q", got, wantTail)
	}
}
