// Package retry is the one backoff helper of disburse: exponential backoff
// with full jitter, bounded by a maximum delay and an attempt count.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff computes delays: attempt n (from 0) waits a random time in
// [0, min(Max, Base*2^n)].
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the wait before retry number attempt (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	ceiling := b.Base
	for i := 0; i < attempt && ceiling < b.Max; i++ {
		ceiling *= 2
	}
	if ceiling > b.Max {
		ceiling = b.Max
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Sleep waits for Delay(attempt) or until ctx ends, whichever first.
func (b Backoff) Sleep(ctx context.Context, attempt int) error {
	t := time.NewTimer(b.Delay(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do calls fn until it succeeds, returns an error that retryable rejects,
// attempts calls were made, or ctx ends. onRetry, when set, is told of each
// retry.
func Do(ctx context.Context, b Backoff, attempts int, retryable func(error) bool, onRetry func(error), fn func() error) error {
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if err = fn(); err == nil || !retryable(err) {
			return err
		}
		if onRetry != nil {
			onRetry(err)
		}
		if attempt+1 < attempts {
			if serr := b.Sleep(ctx, attempt); serr != nil {
				return err
			}
		}
	}
	return err
}
