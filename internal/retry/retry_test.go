package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayStaysUnderCeiling(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for attempt, ceiling := range []time.Duration{10, 20, 40, 80, 80, 80} {
		for i := 0; i < 200; i++ {
			if d := b.Delay(attempt); d < 0 || d > ceiling*time.Millisecond {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", attempt, d, ceiling*time.Millisecond)
			}
		}
	}
}

func TestDoStopsOnSuccessAndOnPermanentError(t *testing.T) {
	errTemp, errPerm := errors.New("temporary"), errors.New("permanent")
	b := Backoff{Base: time.Microsecond, Max: time.Microsecond}
	retryable := func(err error) bool { return errors.Is(err, errTemp) }

	calls, retries := 0, 0
	err := Do(context.Background(), b, 5, retryable, func(error) { retries++ }, func() error {
		calls++
		if calls < 3 {
			return errTemp
		}
		return nil
	})
	if err != nil || calls != 3 || retries != 2 {
		t.Fatalf("got err=%v calls=%d retries=%d, want nil 3 2", err, calls, retries)
	}

	calls = 0
	err = Do(context.Background(), b, 5, retryable, nil, func() error { calls++; return errPerm })
	if !errors.Is(err, errPerm) || calls != 1 {
		t.Fatalf("permanent error: got err=%v calls=%d", err, calls)
	}

	calls = 0
	err = Do(context.Background(), b, 4, retryable, nil, func() error { calls++; return errTemp })
	if !errors.Is(err, errTemp) || calls != 4 {
		t.Fatalf("exhausted: got err=%v calls=%d, want 4 calls", err, calls)
	}
}
