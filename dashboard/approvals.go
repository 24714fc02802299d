package dashboard

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/payout"
)

// approvalStatuses are the approval queue's tabs: what awaits a decision,
// then the history by outcome.
var approvalStatuses = []string{hold.ApprovalPending, hold.ApprovalApproved, hold.ApprovalRejected, hold.ApprovalExpired, hold.ApprovalCancelled}

// queuePage is how many holds the queue shows.
const queuePage = 100

type approvalsView struct {
	Status   string
	Statuses []string
	Holds    []hold.Hold
	Policy   hold.Policy
	// ExpiresMinutes is the policy's approval time as the form shows it.
	ExpiresMinutes string
	FieldErrors    []payout.FieldError
	// Actor is the signed-in user as the holds name their creator.
	Actor string
}

func (s *Server) holds() *hold.Store { return hold.NewStore(s.API.Ledger.DB()) }

// waiting reports whether the hold still holds its payouts: awaiting a
// decision, or approved (or needing none) but scheduled and not released.
func waiting(h *hold.Hold) bool {
	return h != nil && h.ReleasedAt == nil && (h.ApprovalStatus == hold.ApprovalPending ||
		((h.ApprovalStatus == hold.ApprovalNone || h.ApprovalStatus == hold.ApprovalApproved) && h.ScheduledAt != nil))
}

// approvals is the approval queue (maker-checker, issue 14): the holds of
// one approval status, newest first, and the environment's policy.
func (s *Server) approvals(w http.ResponseWriter, r *http.Request, rq *request) {
	status := r.URL.Query().Get("status")
	if status == "" {
		status = hold.ApprovalPending
	}
	s.showApprovals(w, r, rq, status, approvalsView{}, "", "")
}

func (s *Server) showApprovals(w http.ResponseWriter, r *http.Request, rq *request, status string, v approvalsView, flash, errText string) {
	ctx := r.Context()
	known := false
	for _, st := range approvalStatuses {
		known = known || st == status
	}
	if !known {
		s.fail(w, r, rq, http.StatusBadRequest, T(rq.lang, "appr.badstatus"))
		return
	}
	v.Status, v.Statuses, v.Actor = status, approvalStatuses, rq.Actor()
	var err error
	if v.Holds, err = s.holds().Queue(ctx, rq.MerchantID, rq.Environment, status, "", queuePage); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if v.FieldErrors == nil {
		if v.Policy, err = s.holds().Policy(ctx, rq.MerchantID, rq.Environment); err != nil {
			s.internal(w, r, rq.lang, err)
			return
		}
		v.ExpiresMinutes = strconv.Itoa(v.Policy.ExpiresAfter / 60)
	}
	s.view(w, r, rq, "approvals", "approvals", "appr.title", v, flash, errText)
}

// decideHold approves or rejects a held payout or batch with the merchant
// API's own decision (api.Server.DecideHold): the user must be finance or
// owner (the route) and not the one who created it (hold.ErrSameActor).
func (s *Server) decideHold(w http.ResponseWriter, r *http.Request, rq *request) {
	kind, id := r.PathValue("kind"), r.PathValue("id")
	if kind != hold.KindPayout && kind != hold.KindBatch {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	var approve bool
	switch r.PostFormValue("decision") {
	case "approve":
		approve = true
	case "reject":
	default:
		s.fail(w, r, rq, http.StatusBadRequest, T(rq.lang, "appr.baddecision"))
		return
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	if fe := api.CheckNote(note); fe != nil {
		s.showApprovals(w, r, rq, hold.ApprovalPending, approvalsView{}, "", T(rq.lang, "appr.badnote"))
		return
	}
	h, err := s.API.DecideHold(r.Context(), rq.principal(), kind, id, approve, note)
	var msg string
	switch {
	case errors.Is(err, hold.ErrNotFound):
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	case errors.Is(err, hold.ErrSameActor):
		msg = T(rq.lang, "appr.samemaker")
	case errors.Is(err, hold.ErrDecided):
		msg = T(rq.lang, "appr.decided") + " " + h.ApprovalStatus
	case errors.Is(err, hold.ErrExpired):
		msg = T(rq.lang, "appr.expired")
	case err != nil:
		s.internal(w, r, rq.lang, err)
		return
	}
	if msg != "" {
		s.showApprovals(w, r, rq, hold.ApprovalPending, approvalsView{}, "", msg)
		return
	}
	s.Log.Info("approval decided in the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "kind", kind, "hold_id", h.ID, "decision", h.ApprovalStatus)
	flash := T(rq.lang, "appr.rejected")
	if approve {
		flash = T(rq.lang, "appr.approved")
	}
	s.showApprovals(w, r, rq, hold.ApprovalPending, approvalsView{}, flash+" "+h.ID, "")
}

// formInt reads a whole number field of a form ("" is 0); a bad value
// comes back as a field error.
func formInt(r *http.Request, field string, fes *[]payout.FieldError) int64 {
	raw := strings.TrimSpace(strings.ReplaceAll(r.PostFormValue(field), ",", ""))
	if raw == "" {
		return 0
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		*fes = append(*fes, payout.FieldError{Field: field, Code: "INVALID_FORMAT", Message: field + " must be a whole number"})
	}
	return v
}

// savePolicy sets the approval policy (owner), checked by api.CheckPolicy
// and stored by hold.Store.SetPolicy, which writes the settings audit log.
func (s *Server) savePolicy(w http.ResponseWriter, r *http.Request, rq *request) {
	var fes []payout.FieldError
	pol := hold.Policy{PayoutAmount: formInt(r, "payout_amount", &fes), BatchAmount: formInt(r, "batch_amount", &fes)}
	items := formInt(r, "batch_items", &fes)
	minutes := formInt(r, "expires_after_minutes", &fes)
	if items > int64(^uint32(0)>>1) || minutes > int64(^uint32(0)>>1)/60 || minutes < 0 {
		fes = append(fes, payout.FieldError{Field: "expires_after_minutes", Code: "OUT_OF_RANGE", Message: "out of range"})
	}
	pol.BatchItems, pol.ExpiresAfter = int(items), int(minutes)*60
	if len(fes) == 0 {
		fes = api.CheckPolicy(pol)
	}
	if len(fes) > 0 {
		s.showApprovals(w, r, rq, hold.ApprovalPending, approvalsView{Policy: pol, ExpiresMinutes: r.PostFormValue("expires_after_minutes"), FieldErrors: fes},
			"", fieldMessage(fes))
		return
	}
	if err := s.holds().SetPolicy(r.Context(), rq.MerchantID, rq.Environment, rq.Actor(), pol, s.now()); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("approval policy set in the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment, "user_id", rq.ID, "policy", pol)
	s.showApprovals(w, r, rq, hold.ApprovalPending, approvalsView{}, T(rq.lang, "set.saved"), "")
}
