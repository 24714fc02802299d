package dashboard

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// statementRows is how many movements one page of the statement lists.
const statementRows = 50

type disbursementView struct {
	Active      bool
	Requested   time.Time // production: when the merchant asked
	Balance     ledger.Balance
	Statement   []ledger.StatementLine
	Day         string       // the statement's day (Jakarta), YYYY-MM-DD
	Next        template.URL // the statement's next page
	NewKey      string       // the sandbox secret key, shown once after Aktivasi
	DemoDeposit int64
}

// disbursement is the Disbursement menu: Aktivasi (sandbox) or the
// production request, then the balance and its statement.
func (s *Server) disbursement(w http.ResponseWriter, r *http.Request, rq *request) {
	s.showDisbursement(w, r, rq, "", "")
}

func (s *Server) showDisbursement(w http.ResponseWriter, r *http.Request, rq *request, newKey, flash string) {
	ctx := r.Context()
	v := disbursementView{NewKey: newKey, DemoDeposit: api.DemoDeposit}
	var err error
	if v.Active, err = s.environmentActive(ctx, rq); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if !v.Active && rq.Environment == payout.Production {
		if v.Requested, err = s.Store.ProductionRequested(ctx, rq.MerchantID); err != nil {
			s.internal(w, r, rq.lang, err)
			return
		}
	}
	if v.Active {
		v.Balance, err = s.API.Ledger.Balance(ctx, rq.MerchantID, rq.Environment, "IDR")
		if err != nil && !errors.Is(err, ledger.ErrNoAccounts) {
			s.internal(w, r, rq.lang, err)
			return
		}
		// One day's movements (Jakarta), a page at a time, read as
		// GET /v1/balance/transactions reads them: bounded work per view
		// however busy the balance is.
		day, ok := parseDay(r.URL.Query().Get("day"), 0)
		if !ok || day.IsZero() {
			y, m, d := s.now().In(jakarta).Date()
			day = time.Date(y, m, d, 0, 0, 0, 0, jakarta)
		}
		v.Day = day.Format(time.DateOnly)
		after, err := ledger.ParseStatementCursor(r.URL.Query().Get("cursor"))
		if err != nil {
			after = 0
		}
		lines, next, err := s.API.StatementPage(ctx, rq.principal(), day, day.AddDate(0, 0, 1), after, statementRows)
		if err != nil && !errors.Is(err, ledger.ErrNoAccounts) {
			s.internal(w, r, rq.lang, err)
			return
		}
		v.Statement = lines
		if next != 0 {
			v.Next = template.URL("/disbursement?" + url.Values{"day": {v.Day}, "cursor": {ledger.StatementCursor(next)}}.Encode())
		}
	}
	s.view(w, r, rq, "disbursement", "disbursement", "disb.title", v, flash, "")
}

// activate is Aktivasi: the sandbox on at once with the demo deposit, its
// secret key shown once on the answer (never stored in the clear).
func (s *Server) activate(w http.ResponseWriter, r *http.Request, rq *request) {
	if rq.Environment != payout.Sandbox {
		s.fail(w, r, rq, http.StatusBadRequest, T(rq.lang, "disb.prodintro"))
		return
	}
	key, err := s.API.Merchants.ActivateSandbox(r.Context(), rq.MerchantID, "", api.DemoDeposit, api.DefaultSettings)
	if errors.Is(err, merchant.ErrExists) {
		http.Redirect(w, r, "/disbursement", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("sandbox activated from the dashboard", "merchant_id", rq.MerchantID, "user_id", rq.ID, "deposit", api.DemoDeposit)
	s.showDisbursement(w, r, rq, key, T(rq.lang, "disb.activated"))
}

// requestProduction records the request the operator approves.
func (s *Server) requestProduction(w http.ResponseWriter, r *http.Request, rq *request) {
	if err := s.Store.RequestProduction(r.Context(), rq.MerchantID, rq.Email, s.now()); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("production activation requested", "merchant_id", rq.MerchantID, "user_id", rq.ID)
	http.Redirect(w, r, "/disbursement", http.StatusSeeOther)
}
