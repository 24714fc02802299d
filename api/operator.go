package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

var merchantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// DemoDeposit is the sandbox deposit a merchant gets on activation (IDR).
const DemoDeposit int64 = 100_000_000_000

// DefaultSettings are the fee and limits a new environment starts with.
var DefaultSettings = merchant.Settings{FeeFlat: 2500}

func (s *Server) audit(ctx context.Context, action, merchantID string, details any) {
	if _, err := s.Ledger.DB().Exec(ctx, `INSERT INTO operator_audit (action, merchant_id, details) VALUES ($1, $2, $3)`,
		action, merchantID, details); err != nil {
		s.Log.Error("write operator audit", "action", action, "merchant_id", merchantID, "err", err)
	}
}

func (s *Server) merchantID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !merchantIDPattern.MatchString(id) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such merchant"))
		return "", false
	}
	return id, true
}

func (s *Server) createMerchant(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if prob := decodeJSON(w, r, maxOperatorBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	var fields []payout.FieldError
	if !merchantIDPattern.MatchString(in.ID) {
		fields = append(fields, payout.FieldError{Field: "id", Code: "INVALID_FORMAT", Message: "id must be 1-63 of a-z 0-9 _ -, starting with a letter or digit"})
	}
	if in.Name == "" || len(in.Name) > 200 {
		fields = append(fields, payout.FieldError{Field: "name", Code: "INVALID_LENGTH", Message: "name must be 1 to 200 bytes"})
	} else if !payout.CleanText(in.Name) {
		fields = append(fields, payout.FieldError{Field: "name", Code: "INVALID_CHARACTERS", Message: "name must be UTF-8 text without control characters"})
	}
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", fields...))
		return
	}
	err := s.Merchants.Create(r.Context(), in.ID, in.Name)
	if errors.Is(err, merchant.ErrExists) {
		writeError(w, newProblem(http.StatusConflict, CodeConflict, "a merchant with this id exists"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "merchant.create", in.ID, in)
	writeJSON(w, http.StatusCreated, map[string]string{"id": in.ID, "name": in.Name, "status": "ACTIVE"})
}

func (s *Server) activateSandbox(w http.ResponseWriter, r *http.Request) {
	s.activate(w, r, payout.Sandbox)
}

func (s *Server) activateProduction(w http.ResponseWriter, r *http.Request) {
	s.activate(w, r, payout.Production)
}

func (s *Server) activate(w http.ResponseWriter, r *http.Request, environment string) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	var key string
	var err error
	deposit := int64(0)
	if environment == payout.Sandbox {
		deposit = DemoDeposit
		key, err = s.Merchants.ActivateSandbox(r.Context(), id, "", deposit, DefaultSettings)
	} else {
		key, err = s.Merchants.ActivateProduction(r.Context(), id, DefaultSettings)
	}
	switch {
	case errors.Is(err, merchant.ErrNotFound):
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such merchant"))
		return
	case errors.Is(err, merchant.ErrExists):
		writeError(w, newProblem(http.StatusConflict, CodeConflict, environment+" is already active for this merchant"))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), environment+".activate", id, map[string]any{"deposit": deposit})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{
		"merchant_id": id, "environment": environment, "secret_key": key, "deposit": deposit, "currency": "IDR",
	})
}

func (s *Server) topUp(w http.ResponseWriter, r *http.Request) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	var in struct {
		Environment string `json:"environment"`
		Amount      int64  `json:"amount"`
		Currency    string `json:"currency"`
		Memo        string `json:"memo"`
	}
	if prob := decodeJSON(w, r, maxOperatorBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	if in.Environment == "" {
		in.Environment = payout.Production
	}
	if in.Currency == "" {
		in.Currency = "IDR"
	}
	var fields []payout.FieldError
	if in.Environment != payout.Production && in.Environment != payout.Sandbox {
		fields = append(fields, payout.FieldError{Field: "environment", Code: "INVALID_VALUE", Message: "environment must be sandbox or production"})
	}
	if in.Amount <= 0 {
		fields = append(fields, payout.FieldError{Field: "amount", Code: "TOO_SMALL", Message: "amount must be a positive integer"})
	}
	if in.Currency != "IDR" {
		fields = append(fields, payout.FieldError{Field: "currency", Code: "UNSUPPORTED", Message: "currency must be IDR"})
	}
	if utf8.RuneCountInString(in.Memo) > 200 { // characters, as the spec's maxLength counts
		fields = append(fields, payout.FieldError{Field: "memo", Code: "TOO_LONG", Message: "memo must be at most 200 characters"})
	} else if !payout.CleanText(in.Memo) {
		fields = append(fields, payout.FieldError{Field: "memo", Code: "INVALID_CHARACTERS", Message: "memo must be UTF-8 text without control characters"})
	}
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", fields...))
		return
	}
	request := struct {
		MerchantID string `json:"merchant_id"`
		In         any    `json:"in"`
	}{id, in}
	s.operatorOnce(w, r, request, func(ctx context.Context, tx pgx.Tx) (int, any, *problem, error) {
		err := ledger.Deposit(ctx, tx, id, in.Environment, in.Currency, in.Amount, in.Memo)
		if errors.Is(err, ledger.ErrNoAccounts) {
			return 0, nil, newProblem(http.StatusNotFound, CodeNotFound, "this merchant's "+in.Environment+" is not active"), nil
		}
		if err != nil {
			return 0, nil, nil, err
		}
		b, err := ledger.ReadBalance(ctx, tx, id, in.Environment, in.Currency)
		if err != nil {
			return 0, nil, nil, err
		}
		if err := s.auditTx(ctx, tx, "topup", id, in); err != nil {
			return 0, nil, nil, err
		}
		return http.StatusOK, b, nil, nil
	})
}

func (s *Server) setSettings(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.environmentPath(w, r)
	if !ok {
		return
	}
	var in merchant.Settings
	if prob := decodeJSON(w, r, maxOperatorBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	var fields []payout.FieldError
	if in.FeeFlat < 0 {
		fields = append(fields, payout.FieldError{Field: "fee_flat", Code: "TOO_SMALL", Message: "fee_flat must not be negative"})
	}
	if in.FeeBPS < 0 || in.FeeBPS > 10000 {
		fields = append(fields, payout.FieldError{Field: "fee_bps", Code: "OUT_OF_RANGE", Message: "fee_bps must be 0 to 10000"})
	}
	if in.MaxPerPayout < 0 || in.MaxPerDay < 0 {
		fields = append(fields, payout.FieldError{Field: "max_per_payout", Code: "TOO_SMALL", Message: "limits must not be negative (0 means no limit)"})
	}
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", fields...))
		return
	}
	err := s.Merchants.SetSettings(r.Context(), id, env, in)
	if errors.Is(err, merchant.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this merchant's "+env+" is not active"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "settings.set", id, map[string]any{"environment": env, "settings": in})
	writeJSON(w, http.StatusOK, in)
}

func (s *Server) suspend(w http.ResponseWriter, r *http.Request) { s.setStatus(w, r, "SUSPENDED") }
func (s *Server) resume(w http.ResponseWriter, r *http.Request)  { s.setStatus(w, r, "ACTIVE") }

func (s *Server) setStatus(w http.ResponseWriter, r *http.Request, status string) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	err := s.Merchants.SetStatus(r.Context(), id, status)
	if errors.Is(err, merchant.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such merchant"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "merchant.status", id, map[string]string{"status": status})
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "status": status})
}
