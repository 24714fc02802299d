package api

import (
	"errors"
	"net/http"

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
	var req payout.Request
	if prob := decodeJSON(w, r, maxCreateBody, &req); prob != nil {
		writeError(w, prob)
		return
	}
	req.Normalize()
	if errs := req.Validate(); len(errs) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", errs...))
		return
	}
	// The holder name is checked before anything is stored, so a mismatch
	// debits nothing and leaves no payout behind.
	if prob := s.checkHolder(r.Context(), p.Environment, req); prob != nil {
		writeError(w, prob)
		return
	}
	res := s.creates().create(r.Context(), payout.NewPayout{MerchantID: p.MerchantID, Environment: p.Environment, IdempotencyKey: key, Request: req, RequestID: payout.RequestID(r.Context())})
	d, created, err := res.d, res.created, res.err
	switch {
	case errors.Is(err, payout.ErrIdempotencyKeyReused):
		writeError(w, newProblem(http.StatusConflict, CodeIdempotencyReused, "this Idempotency-Key was used with a different request; use a new key for a new payout"))
		return
	case errors.Is(err, payout.ErrDuplicateReference):
		writeError(w, newProblem(http.StatusConflict, CodeDuplicateReference, "this reference_id was used for another payout",
			payout.FieldError{Field: "reference_id", Code: "DUPLICATE", Message: "reference_id must be unique per merchant and environment"}))
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
	writeJSON(w, http.StatusOK, d)
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
