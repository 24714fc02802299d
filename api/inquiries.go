package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/inquiry"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// maxInquiriesBody fits 1,000 accounts with room.
const maxInquiriesBody = 256 << 10

// InquiryRunner answers the bulk account inquiries stored by this API
// (every API instance runs one; they share the jobs by lease). It asks
// each environment's own bank gateway (bankFor), so sandbox never reaches
// a real bank, within each bank's rate limits (the Guard behind it).
func (s *Server) InquiryRunner() *inquiry.Runner {
	return &inquiry.Runner{Store: inquiry.NewStore(s.Ledger.DB()), Callbacks: s.Callbacks, Log: s.Log,
		Bank: func(env string) connectors.Connector { return s.bankFor(env) }}
}

// createInquiries serves POST /v1/account-inquiries: up to 1,000 accounts,
// answered asynchronously (202 with the job).
func (s *Server) createInquiries(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	var in struct {
		Items []inquiryRequest `json:"items"`
	}
	if prob := decodeJSON(w, r, maxInquiriesBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	if len(in.Items) == 0 || len(in.Items) > inquiry.MaxItems {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, fmt.Sprintf("items must hold 1 to %d accounts", inquiry.MaxItems),
			payout.FieldError{Field: "items", Code: "OUT_OF_RANGE", Message: fmt.Sprintf("1 to %d accounts", inquiry.MaxItems)}))
		return
	}
	accounts := make([]inquiry.Account, len(in.Items))
	for i, it := range in.Items {
		accounts[i] = inquiry.Account{BankCode: it.BankCode, AccountNumber: it.AccountNumber}
	}
	j, rows, invalid, err := s.CreateInquiries(r.Context(), p, accounts)
	switch {
	case invalid > 0:
		pr := newProblem(http.StatusUnprocessableEntity, CodeValidation, fmt.Sprintf("%d of %d accounts are invalid; nothing was asked", invalid, len(in.Items)))
		pr.Rows, pr.InvalidRows = rows, invalid
		writeError(w, pr)
		return
	case errors.Is(err, ErrNoInquiryBank):
		writeError(w, newProblem(http.StatusServiceUnavailable, CodeBankUnavailable, "account inquiry is not configured for "+p.Environment+" on this server"))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/account-inquiries/"+j.ID)
	writeJSON(w, http.StatusAccepted, j)
}

// ErrNoInquiryBank: this server has no bank gateway for the environment's
// account inquiries.
var ErrNoInquiryBank = errors.New("api: account inquiry is not configured for this environment")

// CreateInquiries checks each account as POST /v1/account-inquiries does
// (1 to inquiry.MaxItems of them, checked by the caller) and stores the
// job the inquiry runner answers. With any invalid account nothing is
// asked: the row errors (the first batch.MaxReportedErrors) and how many
// accounts are invalid come back instead.
func (s *Server) CreateInquiries(ctx context.Context, p merchant.Principal, accounts []inquiry.Account) (inquiry.Job, []batch.RowError, int, error) {
	var rows []batch.RowError
	invalid := 0
	for i, a := range accounts {
		fields := checkAccount(inquiryRequest{BankCode: a.BankCode, AccountNumber: a.AccountNumber})
		if len(fields) > 0 {
			invalid++
		}
		for _, f := range fields {
			if len(rows) < batch.MaxReportedErrors {
				rows = append(rows, batch.RowError{Row: i + 1, FieldError: f})
			}
		}
	}
	if invalid > 0 {
		return inquiry.Job{}, rows, invalid, nil
	}
	if s.bankFor(p.Environment) == nil {
		return inquiry.Job{}, nil, 0, ErrNoInquiryBank
	}
	j, err := inquiry.NewStore(s.Ledger.DB()).Create(ctx, p.MerchantID, p.Environment, accounts, s.now())
	if err != nil {
		return j, nil, 0, err
	}
	s.Log.Info("bulk account inquiry accepted", "job_id", j.ID, "merchant_id", p.MerchantID, "environment", p.Environment, "items", j.ItemCount)
	return j, nil, 0, nil
}

// getInquiries serves GET /v1/account-inquiries/{id}: the job and every
// answer so far.
func (s *Server) getInquiries(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	id := r.PathValue("id")
	if len(id) > 64 {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such account inquiry"))
		return
	}
	j, err := inquiry.NewStore(s.Ledger.DB()).Get(r.Context(), p.MerchantID, p.Environment, id)
	if errors.Is(err, inquiry.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such account inquiry"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}
