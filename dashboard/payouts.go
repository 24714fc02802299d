package dashboard

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/internal/trace"
	"github.com/disburse/disburse/payout"
)

// jakarta is the zone dates typed in the dashboard are read in (WIB).
var jakarta = func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Jakarta"); err == nil {
		return loc
	}
	return time.FixedZone("WIB", 7*3600)
}()

// searchPage is the payouts listed per page.
const searchPage = 50

type payoutsView struct {
	Q        searchForm
	Results  []payout.Disbursement
	Next     template.URL // the next page's link (its query string is built here, escaped)
	Statuses []payout.Status
	Banks    []string
	Searched bool
}

type searchForm struct {
	ID, ReferenceID, BatchID, Status, BankCode, From, To string
}

var allStatuses = []payout.Status{payout.AwaitingApproval, payout.Scheduled, payout.Pending, payout.Processing, payout.Completed, payout.Failed, payout.Reversed, payout.Cancelled}

func bankCodes() []string {
	var out []string
	for _, b := range connectors.All() {
		out = append(out, b.Code)
	}
	return out
}

// parseDay reads a YYYY-MM-DD date of the form as the start of that day
// in Jakarta; the zero time when empty.
func parseDay(v string, plusDays int) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	d, err := time.ParseInLocation("2006-01-02", v, jakarta)
	if err != nil {
		return time.Time{}, false
	}
	return d.AddDate(0, 0, plusDays), true
}

// payouts searches by reference, id, batch, status, bank and date with
// the merchant API's own filter and search.
func (s *Server) payouts(w http.ResponseWriter, r *http.Request, rq *request) {
	q := r.URL.Query()
	f := searchForm{ID: strings.TrimSpace(q.Get("id")), ReferenceID: strings.TrimSpace(q.Get("reference_id")),
		BatchID: strings.TrimSpace(q.Get("batch_id")), Status: q.Get("status"), BankCode: q.Get("bank_code"),
		From: q.Get("from"), To: q.Get("to")}
	v := payoutsView{Q: f, Statuses: allStatuses, Banks: bankCodes(), Searched: len(q) > 0}
	if f.ID != "" {
		ds, err := s.API.Payouts.GetMany(r.Context(), rq.MerchantID, rq.Environment, []string{f.ID})
		if err != nil {
			s.internal(w, r, rq.lang, err)
			return
		}
		if _, ok := ds[f.ID]; ok {
			http.Redirect(w, r, "/payouts/"+url.PathEscape(f.ID), http.StatusSeeOther)
			return
		}
		s.view(w, r, rq, "payouts", "payouts", "pay.title", v, "", T(rq.lang, "err.notfound"))
		return
	}
	// The API's filter, from the form's fields.
	aq := url.Values{}
	for k, val := range map[string]string{"reference_id": f.ReferenceID, "batch_id": f.BatchID, "status": f.Status, "bank_code": f.BankCode} {
		if val != "" {
			aq.Set(k, val)
		}
	}
	from, ok1 := parseDay(f.From, 0)
	to, ok2 := parseDay(f.To, 1)
	if !ok1 || !ok2 {
		s.view(w, r, rq, "payouts", "payouts", "pay.title", v, "", T(rq.lang, "rep.bad")+" YYYY-MM-DD")
		return
	}
	if !from.IsZero() {
		aq.Set("created_from", from.Format(time.RFC3339))
	}
	if !to.IsZero() {
		aq.Set("created_to", to.Format(time.RFC3339))
	}
	filter, fes := api.ParsePayoutFilter(aq)
	if len(fes) > 0 {
		s.view(w, r, rq, "payouts", "payouts", "pay.title", v, "", fieldMessage(fes))
		return
	}
	cursor := q.Get("cursor")
	if !payout.ValidSearchCursor(cursor) {
		cursor = ""
	}
	list, next, err := s.API.Payouts.Search(r.Context(), rq.MerchantID, rq.Environment, filter, cursor, searchPage)
	if errors.Is(err, payout.ErrBadSearchCursor) {
		list, next, err = s.API.Payouts.Search(r.Context(), rq.MerchantID, rq.Environment, filter, "", searchPage)
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v.Results = list
	if next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", next)
		v.Next = template.URL("/payouts?" + nq.Encode())
	}
	s.view(w, r, rq, "payouts", "payouts", "pay.title", v, "", "")
}

type payoutView struct {
	Payout    payout.Disbursement
	Timeline  []trace.Step // request and status events
	BankCalls []trace.Step
	Callbacks []callbacks.Callback
	Hold      *hold.Hold // the payout's or its batch's approval and schedule, if any
}

// payoutPage shows one payout: its status timeline, bank calls and
// callbacks with their attempts (and redeliver).
func (s *Server) payoutPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.showPayout(w, r, rq, r.PathValue("id"), "")
}

func (s *Server) showPayout(w http.ResponseWriter, r *http.Request, rq *request, id, flash string) {
	ctx := r.Context()
	ds, err := s.API.Payouts.GetMany(ctx, rq.MerchantID, rq.Environment, []string{id})
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	d, ok := ds[id]
	if !ok {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	tl, err := trace.Build(ctx, s.API.Ledger.DB(), id)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v := payoutView{Payout: d}
	// A single payout's hold has its id; a batch item's, its batch's.
	if v.Hold, err = s.API.HoldOf(ctx, rq.principal(), d.ID); err == nil && v.Hold == nil && d.BatchID != nil {
		v.Hold, err = s.API.HoldOf(ctx, rq.principal(), *d.BatchID)
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	seen := map[string]bool{}
	for _, st := range tl.Steps {
		switch st.Source {
		case "request", "event":
			v.Timeline = append(v.Timeline, st)
		case "bank":
			v.BankCalls = append(v.BankCalls, st)
		case "callback":
			if seen[st.Ref] {
				continue
			}
			seen[st.Ref] = true
			c, err := s.API.Callbacks.Get(ctx, rq.MerchantID, rq.Environment, st.Ref)
			if err != nil && !errors.Is(err, callbacks.ErrNotFound) {
				s.internal(w, r, rq.lang, err)
				return
			}
			if err == nil {
				v.Callbacks = append(v.Callbacks, c)
			}
		}
	}
	s.view(w, r, rq, "payout", "payouts", "pay.title", v, flash, "")
}

// redeliver queues a callback again, as POST /v1/callbacks/{id}/redeliver does.
func (s *Server) redeliver(w http.ResponseWriter, r *http.Request, rq *request) {
	c, err := s.API.Callbacks.Redeliver(r.Context(), rq.MerchantID, rq.Environment, r.PathValue("id"))
	if errors.Is(err, callbacks.ErrNotFound) {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("callback redelivery requested from the dashboard", "callback_id", c.ID, "merchant_id", rq.MerchantID, "user_id", rq.ID)
	s.showPayout(w, r, rq, r.PostFormValue("payout_id"), T(rq.lang, "pay.redelivered"))
}

// cancelHeld cancels a payout held for approval or its schedule (nothing
// was debited) with hold.Store.Cancel, as POST /v1/disbursements/{id}/cancel
// does for a held payout.
func (s *Server) cancelHeld(w http.ResponseWriter, r *http.Request, rq *request) {
	id := r.PathValue("id")
	done, err := s.holds().Cancel(r.Context(), rq.MerchantID, rq.Environment, []string{id})
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if len(done) == 0 {
		s.fail(w, r, rq, http.StatusConflict, T(rq.lang, "hold.notcancellable"))
		return
	}
	s.Log.Info("held payout cancelled from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "disbursement_id", id)
	s.showPayout(w, r, rq, id, T(rq.lang, "hold.cancelled"))
}
