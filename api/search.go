package api

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// defaultSearchLimit is the page size of GET /v1/disbursements without ?limit=.
const defaultSearchLimit = 50

// payoutFilter reads the filters GET /v1/disbursements and the CSV export
// share: reference_id, batch_id, status (repeated for several), bank_code,
// created_from (inclusive) and created_to (exclusive), RFC 3339.
func payoutFilter(r *http.Request) (payout.Filter, *problem) {
	return payoutFilterOf(r.URL.Query())
}

func payoutFilterOf(q url.Values) (payout.Filter, *problem) {
	var f payout.Filter
	var prob *problem
	if f.ReferenceID, prob = queryText(q, "reference_id", payout.MaxReferenceID); prob != nil {
		return f, prob
	}
	if f.BatchID, prob = queryText(q, "batch_id", 64); prob != nil {
		return f, prob
	}
	for _, s := range q["status"] {
		switch st := payout.Status(s); st {
		case "": // sent empty: as if absent, like every optional parameter
		case payout.Pending, payout.Processing, payout.Completed, payout.Failed, payout.Reversed, payout.Cancelled,
			payout.AwaitingApproval, payout.Scheduled:
			f.Statuses = append(f.Statuses, st)
		default:
			return f, badQuery("status", "INVALID_VALUE", "status must be PENDING, PROCESSING, COMPLETED, FAILED, REVERSED, CANCELLED, AWAITING_APPROVAL or SCHEDULED; repeat the parameter for several")
		}
	}
	if b := q.Get("bank_code"); b != "" {
		if _, ok := connectors.Lookup(b); !ok {
			return f, badQuery("bank_code", "UNKNOWN_BANK", "bank_code must be a code GET /v1/banks lists")
		}
		f.BankCode = b
	}
	if f.CreatedFrom, prob = queryTime(q, "created_from"); prob != nil {
		return f, prob
	}
	if f.CreatedTo, prob = queryTime(q, "created_to"); prob != nil {
		return f, prob
	}
	if !f.CreatedFrom.IsZero() && !f.CreatedTo.IsZero() && !f.CreatedFrom.Before(f.CreatedTo) {
		return f, badQuery("created_to", "INVALID_RANGE", "created_to must be after created_from")
	}
	return f, nil
}

// listDisbursements serves GET /v1/disbursements: the environment's
// payouts, newest first, filtered, one cursor page at a time.
func (s *Server) listDisbursements(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	f, prob := payoutFilter(r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	q := r.URL.Query()
	limit, prob := queryLimit(q, defaultSearchLimit, payout.MaxSearchLimit)
	if prob != nil {
		writeError(w, prob)
		return
	}
	cursor := q.Get("cursor")
	if !payout.ValidSearchCursor(cursor) {
		writeError(w, cursorProblem("cursor"))
		return
	}
	list, next, err := s.Payouts.Search(r.Context(), p.MerchantID, p.Environment, f, cursor, limit)
	if errors.Is(err, payout.ErrBadSearchCursor) {
		writeError(w, cursorProblem("cursor"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if list == nil {
		list = []payout.Disbursement{}
	}
	var nextCursor *string
	if next != "" {
		nextCursor = &next
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list, "next_cursor": nextCursor, "has_more": next != ""})
}
