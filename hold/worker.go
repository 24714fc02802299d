package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

var released = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "disburse_hold_released_total",
	Help: "Held payouts the hold worker moved on, by outcome: scheduled (due, now PENDING), expired (approval not given in time, FAILED), republished (released earlier, published again).",
}, []string{"outcome"})

// Callback types of the approval steps.
const (
	TypeApprovalRequested = "approval.requested"
	TypeApprovalApproved  = "approval.approved"
	TypeApprovalRejected  = "approval.rejected"
	TypeApprovalExpired   = "approval.expired"
)

// Announce records the callback of an approval step of h (the payouts'
// own status callbacks are the relay's). A failure is returned for the
// caller to log: the step is in the events feed either way.
func Announce(ctx context.Context, cbs *callbacks.Store, h Hold, typ string, at time.Time) error {
	if cbs == nil {
		return nil
	}
	id := callbacks.ID(typ, h.ID, 0)
	body, err := json.Marshal(struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		CreatedAt time.Time `json:"created_at"`
		Data      Hold      `json:"data"`
	}{id, typ, at.UTC(), h})
	if err != nil {
		return err
	}
	_, err = cbs.Enqueue(ctx, []callbacks.New{{ID: id, MerchantID: h.MerchantID, Environment: h.Environment, Type: typ,
		SubjectID: h.ID, Body: body, EventAt: at.UTC()}})
	return err
}

// Worker releases due schedules, expires approvals and publishes released
// payouts a crash left unpublished. Several may run: each takes its rows
// with SKIP LOCKED.
type Worker struct {
	Store     *Store
	Callbacks *callbacks.Store
	// Publish produces request records (the path a new payout takes).
	Publish func(context.Context, []events.Request) error
	Log     *slog.Logger
	// Every is how often it looks (default 1s); RepublishAfter how long a
	// released payout may stay PENDING before it is published again
	// (default 30s); Limit the most holds per step (default 100).
	Every          time.Duration
	RepublishAfter time.Duration
	Limit          int
	// Now is the clock (tests move it).
	Now func() time.Time
}

func (w *Worker) defaults() {
	if w.Every <= 0 {
		w.Every = time.Second
	}
	if w.RepublishAfter <= 0 {
		w.RepublishAfter = 30 * time.Second
	}
	if w.Limit <= 0 {
		w.Limit = 100
	}
	if w.Now == nil {
		w.Now = time.Now
	}
}

// Run works until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	w.defaults()
	t := time.NewTicker(w.Every)
	defer t.Stop()
	for {
		if err := w.Step(ctx); err != nil && ctx.Err() == nil {
			w.Log.Warn("hold worker step failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step runs one round: publish what an earlier round or an API call left
// unpublished, expire approvals, release due schedules.
func (w *Worker) Step(ctx context.Context) error {
	w.defaults()
	now := w.Now()
	stale, holds, err := w.Store.unpublished(ctx, now.Add(-w.RepublishAfter), w.Limit*100)
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		if err := w.Publish(ctx, stale); err != nil {
			return fmt.Errorf("publish released payouts again: %w", err)
		}
		// Not again before RepublishAfter: a slow ledger stage is not
		// flooded with copies.
		if _, err := w.Store.db.Exec(ctx, `UPDATE holds SET released_at = $2 WHERE id = ANY($1)`, holds, now.UTC()); err != nil {
			return err
		}
		released.WithLabelValues("republished").Add(float64(len(stale)))
		w.Log.Warn("published released payouts again (their first publish did not happen)", "count", len(stale))
	}
	for {
		h, ok, err := w.Store.expireOne(ctx, now)
		if err != nil || !ok {
			if err != nil {
				return err
			}
			break
		}
		released.WithLabelValues("expired").Add(float64(h.ItemCount))
		w.Log.Info("approval expired; payouts failed", "hold_id", h.ID, "kind", h.Kind, "merchant_id", h.MerchantID, "environment", h.Environment)
		if err := Announce(ctx, w.Callbacks, h, TypeApprovalExpired, now); err != nil {
			w.Log.Warn("announce expired approval", "hold_id", h.ID, "err", err)
		}
	}
	for {
		reqs, h, ok, err := w.Store.releaseOne(ctx, now)
		if err != nil || !ok {
			return err
		}
		if err := w.Publish(ctx, reqs); err != nil {
			// Released and committed: the next rounds publish it again.
			return fmt.Errorf("publish due payouts of %s: %w", h.ID, err)
		}
		released.WithLabelValues("scheduled").Add(float64(len(reqs)))
		w.Log.Info("scheduled payouts due; released", "hold_id", h.ID, "kind", h.Kind, "merchant_id", h.MerchantID,
			"environment", h.Environment, "count", len(reqs), "scheduled_at", h.ScheduledAt)
	}
}

// expireOne expires one approval past its time, if any.
func (s *Store) expireOne(ctx context.Context, now time.Time) (Hold, bool, error) {
	var h Hold
	found := false
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		h, err = scanHold(tx.QueryRow(ctx, `SELECT `+holdColumns+` FROM holds
			WHERE approval_status = 'PENDING' AND expires_at <= $1 ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED`, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return expire(ctx, tx, &h, now)
	})
	return h, found, err
}

// releaseOne moves one due hold's SCHEDULED payouts to PENDING, if any.
func (s *Store) releaseOne(ctx context.Context, now time.Time) ([]events.Request, Hold, bool, error) {
	var h Hold
	var reqs []events.Request
	found := false
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		h, err = scanHold(tx.QueryRow(ctx, `SELECT `+holdColumns+` FROM holds
			WHERE released_at IS NULL AND scheduled_at <= $1 AND approval_status IN ('NONE', 'APPROVED')
			ORDER BY scheduled_at LIMIT 1 FOR UPDATE SKIP LOCKED`, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		moved, err := move(ctx, tx, h, payout.Scheduled, payout.Pending, "")
		if err != nil {
			return err
		}
		reqs = Requests(moved, now)
		at := now.UTC()
		h.ReleasedAt = &at
		_, err = tx.Exec(ctx, `UPDATE holds SET released_at = $2 WHERE id = $1`, h.ID, at)
		return err
	})
	return reqs, h, found, err
}

// unpublished lists the payouts of holds released before `before` (and
// within the last day) that are still PENDING: their release committed
// but their publish may not have happened.
func (s *Store) unpublished(ctx context.Context, before time.Time, limit int) ([]events.Request, []string, error) {
	rows, err := s.db.Query(ctx, `SELECT h.id, d.id, d.merchant_id, d.environment, d.reference_id, coalesce(d.batch_id, ''), d.bank_code, d.amount, d.currency
		FROM holds h JOIN disbursements d ON (h.kind = 'payout' AND d.id = h.id) OR (h.kind = 'batch' AND d.batch_id = h.id)
		WHERE h.released_at < $1 AND h.released_at > $1 - interval '1 day' AND d.status = 'PENDING'
		  AND NOT EXISTS (SELECT 1 FROM payout_controls c WHERE c.merchant_id = d.merchant_id AND c.environment = d.environment
			AND (c.merchant_paused OR c.operator_paused))
		LIMIT $2`, before, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("read unpublished released payouts: %w", err)
	}
	defer rows.Close()
	var out []events.Request
	var holds []string
	seen := map[string]bool{}
	for rows.Next() {
		var r events.Request
		var hid string
		if err := rows.Scan(&hid, &r.DisbursementID, &r.MerchantID, &r.Environment, &r.ReferenceID, &r.BatchID, &r.BankCode, &r.Amount, &r.Currency); err != nil {
			return nil, nil, err
		}
		r.AcceptedAt = before
		out = append(out, r)
		if !seen[hid] {
			seen[hid] = true
			holds = append(holds, hid)
		}
	}
	return out, holds, rows.Err()
}
