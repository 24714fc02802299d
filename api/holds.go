package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

func (s *Server) holds() *hold.Store { return hold.NewStore(s.Ledger.DB()) }

// scheduledAt checks a requested scheduled_at: after now and at most
// hold.MaxAhead ahead. nil asks for at once.
func (s *Server) checkScheduledAt(at *time.Time) *problem {
	if at == nil {
		return nil
	}
	now := s.now()
	if !at.After(now) || at.After(now.Add(hold.MaxAhead)) {
		return newProblem(http.StatusUnprocessableEntity, CodeValidation, "scheduled_at must be in the future and at most 30 days ahead",
			payout.FieldError{Field: "scheduled_at", Code: "SCHEDULE_WINDOW", Message: "an RFC 3339 time after now and at most 30 days ahead"})
	}
	return nil
}

// parseScheduledAt reads a batch's scheduled_at text (empty: at once).
func (s *Server) parseScheduledAt(raw string) (*time.Time, *problem) {
	if raw == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return nil, newProblem(http.StatusUnprocessableEntity, CodeValidation, "scheduled_at must be an RFC 3339 time",
			payout.FieldError{Field: "scheduled_at", Code: "INVALID_DATE", Message: "an RFC 3339 time that exists, such as 2026-12-24T09:00:00+07:00"})
	}
	t = t.UTC()
	return &t, s.checkScheduledAt(&t)
}

// spec decides what a new payout or batch waits for: approval when the
// environment's policy asks for it, its time when scheduled_at is given.
func (s *Server) spec(ctx context.Context, p merchant.Principal, needs func(hold.Policy) bool, at *time.Time) (hold.Spec, error) {
	pol, err := s.holds().Policy(ctx, p.MerchantID, p.Environment)
	if err != nil {
		return hold.Spec{}, err
	}
	spec := hold.Spec{ScheduledAt: at, CreatedBy: p.KeyID}
	if needs(pol) {
		spec.Approval = true
		spec.ExpiresAt = s.now().Add(time.Duration(pol.ExpiresAfter) * time.Second)
	}
	return spec, nil
}

// HoldOf is the hold of the payout or batch id (its approval and
// schedule), nil when it never had one.
func (s *Server) HoldOf(ctx context.Context, p merchant.Principal, id string) (*hold.Hold, error) {
	h, err := s.holds().Get(ctx, p.MerchantID, p.Environment, id)
	if errors.Is(err, hold.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &h, nil
}

type payoutView struct {
	payout.Disbursement
	Hold *hold.Hold `json:"hold,omitempty"`
}

// createHeldPayout stores a single payout that waits for approval or its
// time: created as any payout is (same idempotency rules), moved to its
// hold in the same transaction, and not published.
func (s *Server) createHeldPayout(w http.ResponseWriter, r *http.Request, p merchant.Principal, key string, req payout.Request, spec hold.Spec) {
	np := payout.NewPayout{MerchantID: p.MerchantID, Environment: p.Environment, IdempotencyKey: key, Request: req, RequestID: payout.RequestID(r.Context())}
	set, err := s.Payouts.CreateSetThen(r.Context(), []payout.NewPayout{np}, func(ctx context.Context, tx pgx.Tx, out []payout.Created) error {
		if out[0].Err != nil || !out[0].Created {
			return nil
		}
		d := out[0].Disbursement
		moved, err := hold.Place(ctx, tx, hold.KindPayout, d.ID, p.MerchantID, p.Environment, []string{d.ID}, d.Amount, spec)
		if err == nil {
			out[0].Disbursement = moved[0]
		}
		return err
	})
	if err == nil {
		err = set[0].Err
	}
	switch {
	case createConflict(err) != nil:
		writeError(w, createConflict(err))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	d, created := set[0].Disbursement, set[0].Created
	h, err := s.HoldOf(r.Context(), p, d.ID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !created && !sameSchedule(h, spec.ScheduledAt) {
		writeError(w, newProblem(http.StatusConflict, CodeIdempotencyReused, "this Idempotency-Key was used with a different scheduled_at; use a new key for a new payout"))
		return
	}
	if created {
		s.Log.Info("payout accepted and held", "disbursement_id", d.ID, "merchant_id", d.MerchantID, "environment", d.Environment,
			"status", d.Status, "amount", d.Amount, "scheduled_at", spec.ScheduledAt, "approval", spec.Approval)
		if spec.Approval {
			s.announce(r.Context(), *h, hold.TypeApprovalRequested)
		}
	} else {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/disbursements/"+d.ID)
	writeJSON(w, http.StatusAccepted, payoutView{Disbursement: d, Hold: h})
}

// sameSchedule reports whether a stored hold asked for the same time.
func sameSchedule(h *hold.Hold, at *time.Time) bool {
	var stored *time.Time
	if h != nil {
		stored = h.ScheduledAt
	}
	if stored == nil || at == nil {
		return stored == nil && at == nil
	}
	return stored.Equal(*at)
}

// ErrInvalidSchedule: a batch's scheduled_at is not an RFC 3339 time in
// the future and at most 30 days ahead.
var ErrInvalidSchedule = errors.New("api: scheduled_at must be an RFC 3339 time after now and at most 30 days ahead")

// batchHold is the hold a new batch gets (nil hold and spec: none).
func (s *Server) batchHold(ctx context.Context, p merchant.Principal, parsed *batch.Parsed) (batch.Hold, *hold.Spec, error) {
	at, prob := s.parseScheduledAt(parsed.Header.ScheduledAt)
	if prob != nil {
		return nil, nil, ErrInvalidSchedule
	}
	var total int64
	for _, it := range parsed.Items {
		total += it.Amount
	}
	spec, err := s.spec(ctx, p, func(pol hold.Policy) bool { return pol.BatchNeeds(len(parsed.Items), total) }, at)
	if err != nil || !spec.Held() {
		return nil, nil, err
	}
	return func(ctx context.Context, tx pgx.Tx, a batch.Accepted, ids []string) error {
		_, err := hold.Place(ctx, tx, hold.KindBatch, a.ID, p.MerchantID, p.Environment, ids, a.TotalAmount, spec)
		return err
	}, &spec, nil
}

// announce records an approval step's callback; a failure is logged (the
// step is in the events feed either way).
func (s *Server) announce(ctx context.Context, h hold.Hold, typ string) {
	if err := hold.Announce(ctx, s.Callbacks, h, typ, s.now()); err != nil {
		s.Log.Warn("record approval callback", "hold_id", h.ID, "type", typ, "err", err)
	}
}
