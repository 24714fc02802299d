// Package relay is the transactional outbox's publisher: the one place
// status events come from. Every status change of a payout is written to
// payout_events in the same transaction as the change (package payout); the
// relay reads those rows in commit order after a cursor kept in Postgres,
// produces each as a status event keyed by merchant, waits for Kafka to
// acknowledge all of them, announces batches whose last item ended, and
// only then moves the cursor.
//
// So no change is ever skipped: a payout that goes COMPLETED and REVERSED
// in one step is announced twice, in version order, and consumers (the
// callback stage, the reports sink) see every transition. A crash between
// the produce and the cursor's save publishes the same changes again, with
// the same versions, which consumers already deduplicate. One relay per
// stream works at a time, under an advisory lock; others stand by and take
// over within StandbyPoll when it dies.
package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

var (
	published = promauto.NewCounter(prometheus.CounterOpts{
		Name: "disburse_relay_events_total",
		Help: "Status changes the outbox relay published to the status topic.",
	})
	lagSeconds = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_relay_lag_seconds",
		Help: "Age of the newest status change the relay published in its last round (0 when idle). Alert when it grows.",
	})
	// terminalSeconds buckets include 300: the SLO is "terminal within 5
	// minutes" (deploy/prometheus/slo.yml).
	terminalSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "disburse_payout_terminal_seconds",
		Help:    "From a payout's acceptance to its first terminal status (COMPLETED, FAILED, CANCELLED), by bank and status, observed when the relay publishes the change. A relay that publishes a change again after a crash observes it again.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400},
	}, []string{"bank", "status"})
	active = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_relay_active",
		Help: "1 while this process is the outbox relay, 0 while it stands by.",
	})
)

// Stage publishes the outbox.
type Stage struct {
	Payouts *payout.Store
	// Batches, when set, lets the relay announce batch.completed.
	Batches *batch.Store
	Kafka   *kgo.Client
	Topics  events.Topics
	Log     *slog.Logger

	// Limit bounds the changes read and published per round (default 5000).
	Limit int
	// Idle is the wait after a round that found less than Limit (default
	// 20ms); after rounds that found nothing it doubles up to MaxIdle
	// (default 160ms), the most a change waits to be published when the
	// outbox was quiet.
	Idle    time.Duration
	MaxIdle time.Duration
	// StandbyPoll is how often a standby tries to take over (default 1s).
	StandbyPoll time.Duration
}

func (s *Stage) defaults() {
	if s.Limit <= 0 {
		s.Limit = 5000
	}
	if s.Idle <= 0 {
		s.Idle = 20 * time.Millisecond
	}
	if s.MaxIdle < s.Idle {
		s.MaxIdle = max(s.Idle, 160*time.Millisecond)
	}
	if s.StandbyPoll <= 0 {
		s.StandbyPoll = time.Second
	}
}

// Run relays until ctx ends: as the relay when it can take the lock, as a
// standby otherwise.
func (s *Stage) Run(ctx context.Context) error {
	s.defaults()
	ob := s.Payouts.Outbox(s.Topics.Status)
	backoff := retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for ctx.Err() == nil {
		ok, err := ob.Acquire(ctx)
		if err != nil || !ok {
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("outbox relay: cannot take the lock; retrying", "err", err)
			}
			_ = sleep(ctx, s.StandbyPoll)
			continue
		}
		active.Set(1)
		s.Log.Info("outbox relay active", "stream", s.Topics.Status)
		err = s.relay(ctx, ob)
		ob.Release()
		active.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		failures++
		s.Log.Warn("outbox relay stopped; taking the lock again", "err", err)
		_ = backoff.Sleep(ctx, min(failures, 6))
	}
	return nil
}

// relay publishes rounds until an error or ctx ends.
func (s *Stage) relay(ctx context.Context, ob *payout.Outbox) error {
	at, err := ob.Cursor(ctx)
	if err != nil {
		return err
	}
	// Each round is a Postgres transaction even when it finds nothing, and
	// between a bulk batch's settle groups most rounds do: after an empty
	// round the wait doubles, up to MaxIdle, and a round that finds
	// changes brings it back to Idle.
	wait := s.Idle
	for {
		n, next, err := s.round(ctx, ob, at)
		if err != nil {
			return err
		}
		at = next
		if n == 0 {
			wait = min(wait*2, s.MaxIdle)
		} else {
			wait = s.Idle
		}
		if n < s.Limit {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
}

// round publishes the changes after at and saves the cursor past them.
func (s *Stage) round(ctx context.Context, ob *payout.Outbox, at payout.Position) (int, payout.Position, error) {
	changes, err := ob.Read(ctx, at, s.Limit)
	if err != nil || len(changes) == 0 {
		lagSeconds.Set(0)
		return 0, at, err
	}
	records := make([]*kgo.Record, 0, len(changes))
	ended := make([]payout.Disbursement, 0)
	for _, c := range changes {
		rec := processor.StatusEvent(s.Topics.Status, c.Disbursement)
		if c.RequestID != "" {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: processor.RequestIDHeader, Value: []byte(c.RequestID)})
		}
		records = append(records, rec)
		if c.BatchID != nil && c.Status.Terminal() {
			ended = append(ended, c.Disbursement)
		}
	}
	if err := processor.Produce(ctx, s.Kafka, records...); err != nil {
		return 0, at, err
	}
	if s.Batches != nil && len(ended) > 0 {
		// A batch announced more than once is harmless: consumers derive
		// the callback id from the batch id.
		done, err := processor.BatchCompletions(ctx, s.Batches, s.Topics.Batches, ended)
		if err != nil {
			return 0, at, err
		}
		if err := processor.Produce(ctx, s.Kafka, done...); err != nil {
			return 0, at, err
		}
	}
	last := changes[len(changes)-1]
	if err := ob.Save(ctx, last.At); err != nil {
		return 0, at, err
	}
	published.Add(float64(len(changes)))
	for _, c := range changes {
		// REVERSED follows COMPLETED: the payout's latency was observed then.
		if c.Status.Terminal() && c.Status != payout.Reversed {
			terminalSeconds.WithLabelValues(c.BankCode, string(c.Status)).Observe(c.UpdatedAt.Sub(c.CreatedAt).Seconds())
		}
	}
	lagSeconds.Set(time.Since(last.UpdatedAt).Seconds())
	return len(changes), last.At, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
