package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// Error codes of the maker-checker calls.
const (
	CodeNotAwaitingApproval = "NOT_AWAITING_APPROVAL"
	CodeApprovalExpired     = "APPROVAL_EXPIRED"
	CodeSameActor           = "MAKER_CANNOT_APPROVE"
)

// Bounds of an approval policy.
const (
	minApprovalSeconds = 60
	maxApprovalSeconds = 30 * 24 * 60 * 60
)

func (s *Server) approvePayout(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	s.decide(w, r, p, hold.KindPayout, true)
}

func (s *Server) rejectPayout(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	s.decide(w, r, p, hold.KindPayout, false)
}

func (s *Server) approveBatch(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	s.decide(w, r, p, hold.KindBatch, true)
}

func (s *Server) rejectBatch(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	s.decide(w, r, p, hold.KindBatch, false)
}

// decide serves the approve and reject calls: by a key with
// batches:approve other than the one that created the payout or batch.
// Approved payouts are published at once (or wait for their scheduled_at);
// a failed publish is retried by the relay role's hold worker.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, p merchant.Principal, kind string, approve bool) {
	var in struct {
		Note string `json:"note"`
	}
	if prob := decodeOptional(w, r, &in); prob != nil {
		writeError(w, prob)
		return
	}
	note := strings.TrimSpace(in.Note)
	if fe := CheckNote(note); fe != nil {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "note must be at most 500 characters without control characters", *fe))
		return
	}
	id := r.PathValue("id")
	what := "disbursement"
	if kind == hold.KindBatch {
		what = "batch"
	}
	h, err := s.DecideHold(r.Context(), p, kind, id, approve, note)
	switch {
	case errors.Is(err, hold.ErrNotFound):
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such "+what+" awaiting approval"))
		return
	case errors.Is(err, hold.ErrDecided):
		writeError(w, newProblem(http.StatusConflict, CodeNotAwaitingApproval, "this "+what+" is not awaiting approval (approval status "+h.ApprovalStatus+")"))
		return
	case errors.Is(err, hold.ErrExpired):
		writeError(w, newProblem(http.StatusConflict, CodeApprovalExpired, "the approval expired; its payouts failed with APPROVAL_EXPIRED"))
		return
	case errors.Is(err, hold.ErrSameActor):
		writeError(w, newProblem(http.StatusForbidden, CodeSameActor, "the key that created this "+what+" may not approve or reject it; use another key with batches:approve"))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// CheckNote checks a decision's note (already trimmed).
func CheckNote(note string) *payout.FieldError {
	if utf8.RuneCountInString(note) > 500 || strings.IndexFunc(note, func(c rune) bool { return unicode.IsControl(c) && c != '\n' }) >= 0 {
		return &payout.FieldError{Field: "note", Code: "INVALID_VALUE", Message: "at most 500 characters without control characters"}
	}
	return nil
}

// DecideHold approves or rejects the payout or batch id awaiting approval
// as p.KeyID (a key id, or a dashboard user's actor), with note (checked
// by CheckNote): the decision of POST .../approve and .../reject, shared
// with the dashboard. Approved payouts are published at once (or wait for
// their scheduled_at); a failed publish is retried by the relay role's
// hold worker. The errors are hold's (ErrNotFound, ErrDecided with the
// hold, ErrExpired, ErrSameActor).
func (s *Server) DecideHold(ctx context.Context, p merchant.Principal, kind, id string, approve bool, note string) (hold.Hold, error) {
	if len(id) > 64 {
		return hold.Hold{}, hold.ErrNotFound
	}
	h, released, err := s.holds().Decide(ctx, p.MerchantID, p.Environment, kind, id, p.KeyID, approve, note, s.now())
	if errors.Is(err, hold.ErrExpired) {
		s.announce(ctx, h, hold.TypeApprovalExpired)
	}
	if err != nil {
		return h, err
	}
	typ := hold.TypeApprovalRejected
	if approve {
		typ = hold.TypeApprovalApproved
	}
	s.Log.Info("approval decided", "hold_id", h.ID, "kind", kind, "merchant_id", p.MerchantID, "environment", p.Environment,
		"decision", h.ApprovalStatus, "by_key_id", p.KeyID, "released", len(released))
	if err := s.produceRequests(ctx, hold.Requests(released, s.now())); err != nil {
		// Approved and committed: the hold worker publishes them again.
		s.Log.Error("publish approved payouts; the hold worker will retry", "hold_id", h.ID, "err", err)
	}
	s.announce(ctx, h, typ)
	return h, nil
}

// listApprovals serves GET /v1/approvals: the approval queue (by default
// what awaits a decision), newest first.
func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	q := r.URL.Query()
	status := q.Get("status")
	switch status {
	case "":
		status = hold.ApprovalPending
	case hold.ApprovalPending, hold.ApprovalApproved, hold.ApprovalRejected, hold.ApprovalExpired, hold.ApprovalCancelled:
	default:
		writeError(w, badQuery("status", "INVALID_VALUE", "status must be PENDING, APPROVED, REJECTED, EXPIRED or CANCELLED"))
		return
	}
	limit, prob := queryLimit(q, defaultPageSize, maxPageSize)
	if prob != nil {
		writeError(w, prob)
		return
	}
	cursor, prob := queryText(q, "cursor", 64)
	if prob != nil {
		writeError(w, prob)
		return
	}
	list, err := s.holds().Queue(r.Context(), p.MerchantID, p.Environment, status, cursor, limit)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeIDPage(w, list, limit, func(x hold.Hold) string { return x.ID })
}

func (s *Server) getApprovalPolicy(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	pol, err := s.holds().Policy(r.Context(), p.MerchantID, p.Environment)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pol)
}

// setApprovalPolicy serves PUT /v1/approvals/policy.
func (s *Server) setApprovalPolicy(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if p.Retiring {
		writeError(w, retiringKey())
		return
	}
	in := hold.Policy{ExpiresAfter: hold.DefaultExpiresAfter}
	if prob := decodeJSON(w, r, maxSettingsBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	if fields := CheckPolicy(in); len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the policy has invalid fields", fields...))
		return
	}
	if err := s.holds().SetPolicy(r.Context(), p.MerchantID, p.Environment, p.KeyID, in, s.now()); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.Log.Info("approval policy set", "merchant_id", p.MerchantID, "environment", p.Environment, "by_key_id", p.KeyID, "policy", in)
	writeJSON(w, http.StatusOK, in)
}

// CheckPolicy range-checks an approval policy as PUT /v1/approvals/policy
// does (the dashboard's policy form too).
func CheckPolicy(in hold.Policy) []payout.FieldError {
	var fields []payout.FieldError
	if in.PayoutAmount < 0 {
		fields = append(fields, payout.FieldError{Field: "payout_amount", Code: "OUT_OF_RANGE", Message: "payout_amount must be 0 (never) or more"})
	}
	if in.BatchAmount < 0 {
		fields = append(fields, payout.FieldError{Field: "batch_amount", Code: "OUT_OF_RANGE", Message: "batch_amount must be 0 (never) or more"})
	}
	if in.BatchItems < 0 || in.BatchItems > batch.MaxItems {
		fields = append(fields, payout.FieldError{Field: "batch_items", Code: "OUT_OF_RANGE", Message: "batch_items must be 0 (never) to 100000"})
	}
	if in.ExpiresAfter < minApprovalSeconds || in.ExpiresAfter > maxApprovalSeconds {
		fields = append(fields, payout.FieldError{Field: "expires_after_seconds", Code: "OUT_OF_RANGE", Message: "expires_after_seconds must be 60 to 2592000 (30 days)"})
	}
	return fields
}
