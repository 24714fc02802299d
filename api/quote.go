package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/quote"
)

// Error codes of a batch created with a quote_id.
const (
	CodeQuoteExpired  = "QUOTE_EXPIRED"
	CodeQuoteMismatch = "QUOTE_MISMATCH"
)

// quoteBatch serves POST /v1/batches/quote: the batch body a POST
// /v1/batches would take, priced without moving money.
func (s *Server) quoteBatch(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	parsed, _, ok := readBatch(w, r)
	if !ok {
		return
	}
	if parsed.Header.QuoteID != "" {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "a quote does not take a quote_id",
			payout.FieldError{Field: "quote_id", Code: "UNKNOWN_FIELD", Message: "remove quote_id to quote a batch"}))
		return
	}
	start, prob := s.parseScheduledAt(parsed.Header.ScheduledAt)
	if prob != nil {
		writeError(w, prob)
		return
	}
	q, err := s.QuoteBatch(r.Context(), p, parsed, start)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// QuoteBatch prices a parsed batch without moving money and stores the
// quote (POST /v1/batches/quote, shared with the dashboard's upload
// check): valid and invalid rows, duplicates, totals and fees, per-bank
// counts and expected completion from start (nil: now), balance cover.
func (s *Server) QuoteBatch(ctx context.Context, p merchant.Principal, parsed *batch.Parsed, start *time.Time) (quote.Quote, error) {
	st, err := s.Merchants.Settings(ctx, p.MerchantID, p.Environment)
	if err != nil {
		return quote.Quote{}, err
	}
	bal, err := s.Ledger.Balance(ctx, p.MerchantID, p.Environment, "IDR")
	if err != nil && !errors.Is(err, ledger.ErrNoAccounts) {
		return quote.Quote{}, err
	}
	quotes := quote.NewStore(s.Ledger.DB())
	refs := make([]string, len(parsed.Items))
	for i, it := range parsed.Items {
		refs[i] = it.ReferenceID
	}
	dups, err := quotes.Used(ctx, p.MerchantID, p.Environment, refs)
	if err != nil {
		return quote.Quote{}, err
	}
	breakers, err := s.breakerStates(ctx, p.Environment)
	if err != nil {
		return quote.Quote{}, err
	}
	profiles := s.Profiles
	if profiles == nil {
		profiles = connectors.DefaultProfiles()
	}
	in := quote.Inputs{Fees: quoteFees(st), Balance: quote.Balance{Billing: bal.Billing, Available: bal.Available},
		Duplicates: dups, Profiles: profiles, Breakers: breakers, Now: s.now()}
	if start != nil { // a scheduled batch starts then
		in.Start = *start
	}
	q := quote.Build(parsed, in)
	if err := quotes.Save(ctx, p.MerchantID, p.Environment, &q); err != nil {
		return quote.Quote{}, err
	}
	s.Log.Info("batch quoted", "quote_id", q.ID, "merchant_id", p.MerchantID, "environment", p.Environment,
		"items", q.ItemCount, "invalid", q.InvalidCount, "duplicates", q.DuplicateCount, "total_debit", q.TotalDebit, "covers", q.Balance.Covers)
	return q, nil
}

func quoteFees(st merchant.Settings) quote.Fees {
	return quote.Fees{Flat: st.FeeFlat, BPS: int64(st.FeeBPS), MaxPerPayout: st.MaxPerPayout}
}

// CheckQuote holds a batch created with a quote_id (parsed.Header.QuoteID)
// to its quote: quote.ErrNotFound, quote.ErrExpired or quote.ErrMismatch
// (with what differs) when it does not match.
func (s *Server) CheckQuote(ctx context.Context, p merchant.Principal, parsed *batch.Parsed) error {
	st, err := s.Merchants.Settings(ctx, p.MerchantID, p.Environment)
	if err != nil {
		return err
	}
	return quote.NewStore(s.Ledger.DB()).Check(ctx, p.MerchantID, p.Environment, parsed.Header.QuoteID, parsed, quoteFees(st), s.now())
}

// checkQuote answers CheckQuote's refusal as a problem (nil: it matches).
func (s *Server) checkQuote(r *http.Request, p merchant.Principal, parsed *batch.Parsed) *problem {
	err := s.CheckQuote(r.Context(), p, parsed)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, quote.ErrNotFound):
		return newProblem(http.StatusUnprocessableEntity, CodeValidation, "no such quote in this environment",
			payout.FieldError{Field: "quote_id", Code: "UNKNOWN_QUOTE", Message: "quote_id must be an id POST /v1/batches/quote answered in this environment"})
	case errors.Is(err, quote.ErrExpired):
		return newProblem(http.StatusConflict, CodeQuoteExpired, "the quote expired; quote the batch again")
	case errors.Is(err, quote.ErrMismatch):
		return newProblem(http.StatusConflict, CodeQuoteMismatch, err.Error()+"; nothing was accepted")
	}
	id, _ := r.Context().Value(requestIDKey{}).(string)
	s.Log.Error("check quote", "request_id", id, "err", err)
	return newProblem(http.StatusInternalServerError, CodeInternal, "internal error; quote request id "+id)
}
