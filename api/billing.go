package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
)

// environmentPath reads {id} and {env} of an operator path.
func (s *Server) environmentPath(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return "", "", false
	}
	env, ok := s.environment(w, r)
	return id, env, ok
}

func (s *Server) setBilling(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.environmentPath(w, r)
	if !ok {
		return
	}
	var in struct {
		Billing     string `json:"billing"`
		CreditLimit int64  `json:"credit_limit"`
	}
	if prob := decodeJSON(w, r, maxOperatorBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	var fields []payout.FieldError
	if in.Billing != "deposit" && in.Billing != "invoice" {
		fields = append(fields, payout.FieldError{Field: "billing", Code: "INVALID_VALUE", Message: "billing must be deposit or invoice"})
	}
	if in.CreditLimit < 0 || (in.Billing == "invoice" && in.CreditLimit == 0) {
		fields = append(fields, payout.FieldError{Field: "credit_limit", Code: "TOO_SMALL", Message: "invoice billing needs a positive credit_limit"})
	}
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", fields...))
		return
	}
	err := s.Ledger.SetBilling(r.Context(), id, env, in.Billing, in.CreditLimit)
	if errors.Is(err, ledger.ErrNoAccounts) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this merchant's "+env+" is not active"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "billing.set", id, map[string]any{"environment": env, "billing": in.Billing, "credit_limit": in.CreditLimit})
	b, err := s.Ledger.Balance(r.Context(), id, env, "IDR")
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) closeInvoice(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.environmentPath(w, r)
	if !ok {
		return
	}
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	s.operatorOnce(w, r, map[string]string{"merchant_id": id, "environment": env}, func(ctx context.Context, _ pgx.Tx) (int, any, *problem, error) {
		inv, err := s.Ledger.CloseInvoice(ctx, id, env, "IDR")
		if errors.Is(err, ledger.ErrNoOpenInvoice) {
			return 0, nil, newProblem(http.StatusConflict, CodeConflict, "this environment is billed by deposit: there is no invoice period to close"), nil
		}
		if err != nil {
			return 0, nil, nil, err
		}
		s.audit(ctx, "invoice.close", id, map[string]any{"environment": env, "invoice_id": inv.ID, "amount_due": inv.AmountDue})
		return http.StatusOK, inv, nil, nil
	})
}

func (s *Server) payInvoice(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.environmentPath(w, r)
	if !ok {
		return
	}
	invoiceID, err := strconv.ParseInt(r.PathValue("invoice"), 10, 64)
	if err != nil || invoiceID <= 0 {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such invoice"))
		return
	}
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	s.operatorOnce(w, r, map[string]any{"merchant_id": id, "environment": env, "invoice": invoiceID}, func(ctx context.Context, _ pgx.Tx) (int, any, *problem, error) {
		inv, err := s.Ledger.PayInvoice(ctx, id, env, invoiceID)
		if errors.Is(err, ledger.ErrInvoiceState) {
			return 0, nil, newProblem(http.StatusConflict, CodeConflict, "the invoice does not exist or is not awaiting payment (open, or already paid)"), nil
		}
		if err != nil {
			return 0, nil, nil, err
		}
		s.audit(ctx, "invoice.pay", id, map[string]any{"environment": env, "invoice_id": inv.ID, "amount": inv.AmountDue})
		return http.StatusOK, inv, nil, nil
	})
}

func (s *Server) listInvoices(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.environmentPath(w, r)
	if !ok {
		return
	}
	list, err := s.Ledger.Invoices(r.Context(), id, env)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list})
}
