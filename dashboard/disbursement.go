package dashboard

import (
	"errors"
	"net/http"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// statementRows is how many movements the Disbursement menu lists.
const statementRows = 50

type disbursementView struct {
	Active      bool
	Requested   time.Time // production: when the merchant asked
	Balance     ledger.Balance
	Statement   []ledger.StatementLine
	NewKey      string // the sandbox secret key, shown once after Aktivasi
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
		// The newest movements: the statement is read oldest first, so
		// start from a week back and keep the last page's tail.
		lines, err := s.latestStatement(r, rq)
		if err != nil {
			s.internal(w, r, rq.lang, err)
			return
		}
		v.Statement = lines
	}
	s.view(w, r, rq, "disbursement", "disbursement", "disb.title", v, flash, "")
}

// latestStatement reads the last statementRows movements, newest first.
func (s *Server) latestStatement(r *http.Request, rq *request) ([]ledger.StatementLine, error) {
	var all []ledger.StatementLine
	var after int64
	from := s.now().Add(-30 * 24 * time.Hour)
	for {
		page, next, err := s.API.StatementPage(r.Context(), rq.principal(), from, time.Time{}, after, 1000)
		if errors.Is(err, ledger.ErrNoAccounts) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(all) > statementRows {
			all = all[len(all)-statementRows:]
		}
		if next == 0 {
			break
		}
		after = next
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all, nil
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
