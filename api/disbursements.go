package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// idempotencyKey reads and checks the Idempotency-Key header.
func idempotencyKey(r *http.Request) (string, *problem) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return "", newProblem(http.StatusBadRequest, CodeIdempotencyRequired, "send an Idempotency-Key header (1 to 128 printable ASCII characters) with every create call")
	}
	if len(key) > payout.MaxIdempotencyKey {
		return "", newProblem(http.StatusBadRequest, CodeIdempotencyRequired, "the Idempotency-Key header must be at most 128 characters")
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return "", newProblem(http.StatusBadRequest, CodeIdempotencyRequired, "the Idempotency-Key header must be printable ASCII without spaces")
		}
	}
	return key, nil
}

func (s *Server) createDisbursement(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	key, prob := idempotencyKey(r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	var in struct {
		payout.Request
		// ScheduledAt holds the payout until then (issue 14).
		ScheduledAt string `json:"scheduled_at"`
	}
	if prob := decodeJSON(w, r, maxCreateBody, &in); prob != nil {
		// encoding/json names a field of the embedded request by its path.
		for i := range prob.Fields {
			prob.Fields[i].Field = strings.TrimPrefix(prob.Fields[i].Field, "Request.")
			prob.Fields[i].Message = strings.TrimPrefix(prob.Fields[i].Message, "Request.")
		}
		writeError(w, prob)
		return
	}
	req := in.Request
	req.Normalize()
	if errs := req.Validate(); len(errs) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", errs...))
		return
	}
	scheduledAt, prob := s.parseScheduledAt(in.ScheduledAt)
	if prob != nil {
		writeError(w, prob)
		return
	}
	// The holder name is checked before anything is stored, so a mismatch
	// debits nothing and leaves no payout behind.
	if prob := s.checkHolder(r.Context(), p.Environment, req); prob != nil {
		writeError(w, prob)
		return
	}
	// A payout over the approval threshold, or scheduled, is held: stored
	// without being published (holds.go).
	spec, err := s.spec(r.Context(), p, func(pol hold.Policy) bool { return pol.PayoutNeeds(req.Amount) }, scheduledAt)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if spec.Held() {
		s.createHeldPayout(w, r, p, key, req, spec)
		return
	}
	res := s.creates().create(r.Context(), payout.NewPayout{MerchantID: p.MerchantID, Environment: p.Environment, IdempotencyKey: key, Request: req, RequestID: payout.RequestID(r.Context())})
	d, created, err := res.d, res.created, res.err
	switch {
	case createConflict(err) != nil:
		writeError(w, createConflict(err))
		return
	case errors.Is(err, errPublish):
		// Stored but not acknowledged by Kafka: a 202 would promise a
		// payout that may never be processed. The retry's replay publishes.
		s.logFor(r.Context()).Error("publish payout request", "disbursement_id", d.ID, "merchant_id", d.MerchantID, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, newProblem(http.StatusServiceUnavailable, CodeUnavailable, "the payout could not be queued; retry with the same Idempotency-Key"))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	if !created && (d.Status == payout.AwaitingApproval || d.Status == payout.Scheduled) {
		// A replay of a held payout: it must not have asked for a time.
		h, err := s.HoldOf(r.Context(), p, d.ID)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if !sameSchedule(h, nil) {
			writeError(w, newProblem(http.StatusConflict, CodeIdempotencyReused, "this Idempotency-Key was used with a scheduled_at; use a new key for a new payout"))
			return
		}
	}
	if created {
		s.logFor(r.Context()).Info("payout accepted", "disbursement_id", d.ID, "merchant_id", d.MerchantID, "environment", d.Environment,
			"bank", d.BankCode, "amount", d.Amount)
	} else {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/disbursements/"+d.ID)
	writeJSON(w, http.StatusAccepted, d)
}

func (s *Server) getDisbursement(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	id := r.PathValue("id")
	if len(id) > 64 {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such disbursement"))
		return
	}
	d, err := s.Payouts.Get(r.Context(), p.MerchantID, p.Environment, id)
	if errors.Is(err, payout.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such disbursement"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	v := payoutView{Disbursement: d}
	if d.BatchID == nil {
		if v.Hold, err = s.HoldOf(r.Context(), p, d.ID); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getBalance(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	currency := r.URL.Query().Get("currency")
	if currency == "" {
		currency = "IDR"
	}
	if currency != "IDR" {
		writeError(w, newProblem(http.StatusBadRequest, CodeValidation, "currency must be IDR",
			payout.FieldError{Field: "currency", Code: "UNSUPPORTED", Message: "currency must be IDR"}))
		return
	}
	b, err := s.Ledger.Balance(r.Context(), p.MerchantID, p.Environment, currency)
	if errors.Is(err, ledger.ErrNoAccounts) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this environment has no balance yet"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// createConflict is the 409 of a create refused for its idempotency key or
// reference_id, or nil.
func createConflict(err error) *problem {
	switch {
	case errors.Is(err, payout.ErrIdempotencyKeyReused):
		return newProblem(http.StatusConflict, CodeIdempotencyReused, "this Idempotency-Key was used with a different request; use a new key for a new payout")
	case errors.Is(err, payout.ErrDuplicateReference):
		return newProblem(http.StatusConflict, CodeDuplicateReference, "this reference_id was used for another payout",
			payout.FieldError{Field: "reference_id", Code: "DUPLICATE", Message: "reference_id must be unique per merchant and environment"})
	}
	return nil
}
