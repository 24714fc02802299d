package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// CodeNotCancellable: the payout was handed to its bank or has ended.
const CodeNotCancellable = "NOT_CANCELLABLE"

// cancelDisbursement: POST /v1/disbursements/{id}/cancel. Allowed while the
// payout has not been handed to its bank: PENDING, or PROCESSING but
// parked or waiting for dispatch with no transfer call recorded; the debit
// comes back in the same transaction. 200 with the CANCELLED payout (also
// when it was already cancelled), 409 NOT_CANCELLABLE with its status
// otherwise.
func (s *Server) cancelDisbursement(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	id := r.PathValue("id")
	if len(id) > 64 {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such disbursement"))
		return
	}
	// A held payout (nothing debited) is cancelled by its hold; any other
	// by the ledger, which returns the debit. Each locks the payout, so an
	// approval racing this cancel either came first (the payout is PENDING
	// now, and the ledger cancels it) or finds it cancelled.
	held, err := s.holds().Cancel(r.Context(), p.MerchantID, p.Environment, []string{id})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if len(held) == 1 {
		s.Log.Info("held payout cancelled", "disbursement_id", id, "merchant_id", p.MerchantID, "environment", p.Environment)
		writeJSON(w, http.StatusOK, held[0])
		return
	}
	d, err := s.Ledger.Cancel(r.Context(), p.MerchantID, p.Environment, id)
	switch {
	case errors.Is(err, payout.ErrNotFound):
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such disbursement"))
	case errors.Is(err, ledger.ErrNotCancellable) && d.Status == payout.Cancelled:
		writeJSON(w, http.StatusOK, d) // a repeated cancel
	case errors.Is(err, ledger.ErrNotCancellable):
		writeError(w, newProblem(http.StatusConflict, CodeNotCancellable,
			"the payout is "+string(d.Status)+" and was handed to its bank or has ended; it can no longer be cancelled"))
	case err != nil:
		s.internalError(w, r, err)
	default:
		s.logFor(r.Context()).Info("payout cancelled", "disbursement_id", d.ID, "merchant_id", p.MerchantID, "environment", p.Environment)
		writeJSON(w, http.StatusOK, d)
	}
}

// BatchCancel is the answer of POST /v1/batches/{id}/cancel.
type BatchCancel struct {
	BatchID      string `json:"batch_id"`
	Cancelled    int    `json:"cancelled"`
	NotCancelled int    `json:"not_cancelled"`
}

// cancelBatch: POST /v1/batches/{id}/cancel cancels every item of the
// batch not yet handed to its bank and says how many were and were not
// cancelled (already at their bank or ended). Repeating it is harmless.
func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	id := r.PathValue("id")
	if len(id) > 64 {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such batch"))
		return
	}
	bc, err := s.CancelBatch(r.Context(), p, id)
	if errors.Is(err, batch.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such batch"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, bc)
}

// CancelBatch cancels every item of the batch not yet handed to its bank
// (held items by their hold, nothing debited; the others by the ledger,
// which returns the debit), as POST /v1/batches/{id}/cancel does, shared
// with the dashboard. batch.ErrNotFound when the environment has no such batch.
func (s *Server) CancelBatch(ctx context.Context, p merchant.Principal, id string) (BatchCancel, error) {
	if _, err := batch.NewStore(s.Ledger.DB()).Get(ctx, p.MerchantID, p.Environment, id); err != nil {
		return BatchCancel{}, err
	}
	heldDone, err := s.holds().CancelBatch(ctx, p.MerchantID, p.Environment, id)
	if err != nil {
		return BatchCancel{}, err
	}
	done, kept, err := s.Ledger.CancelBatch(ctx, p.MerchantID, p.Environment, id)
	if err != nil {
		return BatchCancel{}, err
	}
	// The ledger counts the held items cancelled just before as ended.
	done, kept = done+heldDone, kept-heldDone
	s.logFor(ctx).Info("batch cancelled", "batch_id", id, "merchant_id", p.MerchantID, "environment", p.Environment,
		"cancelled", done, "not_cancelled", kept)
	return BatchCancel{BatchID: id, Cancelled: done, NotCancelled: kept}, nil
}
