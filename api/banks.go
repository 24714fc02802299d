package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// CodeBankUnavailable: the bank could not be asked (account inquiry).
const CodeBankUnavailable = "BANK_UNAVAILABLE"

// CodeNameMismatch: account_holder_name is not the bank's name for the account.
const CodeNameMismatch = "NAME_MISMATCH"

// inquiryTimeout bounds an account inquiry made for a request.
const inquiryTimeout = 10 * time.Second

// healthFresh is how recent a dispatch worker's report of a bank's breaker
// must be to count.
const healthFresh = 30 * time.Second

type inquiryRequest struct {
	BankCode      string `json:"bank_code"`
	AccountNumber string `json:"account_number"`
}

type inquiryView struct {
	BankCode          string `json:"bank_code"`
	AccountNumber     string `json:"account_number"`
	AccountHolderName string `json:"account_holder_name"`
	Status            string `json:"status"`
}

func (s *Server) accountInquiry(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	var in inquiryRequest
	if prob := decodeJSON(w, r, maxCreateBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	if fields := checkAccount(in); len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", fields...))
		return
	}
	inq, prob := s.inquire(r.Context(), p.Environment, in.BankCode, in.AccountNumber)
	if prob != nil {
		writeError(w, prob)
		return
	}
	writeJSON(w, http.StatusOK, inquiryView{BankCode: in.BankCode, AccountNumber: in.AccountNumber,
		AccountHolderName: inq.AccountHolderName, Status: inq.Status})
}

// checkAccount checks an account to ask about (one inquiry, or one item
// of a bulk inquiry).
func checkAccount(in inquiryRequest) []payout.FieldError {
	var fields []payout.FieldError
	bank, known := connectors.Lookup(in.BankCode)
	switch {
	case in.BankCode == "":
		fields = append(fields, payout.FieldError{Field: "bank_code", Code: "REQUIRED", Message: "bank_code is required"})
	case !known:
		fields = append(fields, payout.FieldError{Field: "bank_code", Code: "UNKNOWN_BANK", Message: "bank_code is not supported; GET /v1/banks lists the codes"})
	}
	switch {
	case in.AccountNumber == "":
		fields = append(fields, payout.FieldError{Field: "account_number", Code: "REQUIRED", Message: "account_number is required"})
	case known:
		if err := bank.ValidateAccount(in.AccountNumber); err != nil {
			fields = append(fields, payout.FieldError{Field: "account_number", Code: "INVALID_FORMAT", Message: err.Error()})
		}
	}
	return fields
}

// bankFor is the environment's bank gateway: Banks[environment] when
// Banks is set (sandbox to the sandbox banks, production to the real
// gateways, each with its own inquiry cache), else Bank.
func (s *Server) bankFor(environment string) connectors.Connector {
	if s.Banks != nil {
		return s.Banks[environment]
	}
	return s.Bank
}

// inquire asks the environment's bank (through its cache) about an account.
func (s *Server) inquire(ctx context.Context, environment, bankCode, account string) (connectors.Inquiry, *problem) {
	bank := s.bankFor(environment)
	if bank == nil {
		return connectors.Inquiry{}, newProblem(http.StatusServiceUnavailable, CodeBankUnavailable, "account inquiry is not configured for "+environment+" on this server")
	}
	ctx, cancel := context.WithTimeout(ctx, inquiryTimeout)
	defer cancel()
	inq, err := bank.Inquire(ctx, bankCode, account)
	if err != nil {
		s.Log.Warn("account inquiry failed", "environment", environment, "bank", bankCode, "err", err)
		p := newProblem(http.StatusServiceUnavailable, CodeBankUnavailable, "the bank could not be asked about this account; try again later")
		return connectors.Inquiry{}, p
	}
	return inq, nil
}

// checkHolder compares a payout's account_holder_name with the bank's name
// for the account, before anything is stored or published.
func (s *Server) checkHolder(ctx context.Context, environment string, req payout.Request) *problem {
	if req.AccountHolderName == "" {
		return nil
	}
	inq, prob := s.inquire(ctx, environment, req.BankCode, req.AccountNumber)
	if prob != nil {
		prob.Message = "the account holder name cannot be checked now: " + prob.Message
		return prob
	}
	switch inq.Status {
	case connectors.InquiryValid:
	case connectors.InquiryClosed:
		return newProblem(http.StatusUnprocessableEntity, payout.AccountClosed, "the account is closed",
			payout.FieldError{Field: "account_number", Code: payout.AccountClosed, Message: "the bank says this account is closed"})
	case connectors.InquiryInvalid:
		return newProblem(http.StatusUnprocessableEntity, payout.InvalidAccount, "the account does not exist",
			payout.FieldError{Field: "account_number", Code: payout.InvalidAccount, Message: "the bank has no such account"})
	default:
		return newProblem(http.StatusServiceUnavailable, CodeBankUnavailable, "the bank could not confirm the account holder; try again later")
	}
	threshold := s.NameMatchThreshold
	if threshold <= 0 {
		threshold = connectors.DefaultNameThreshold
	}
	if score := connectors.NameScore(req.AccountHolderName, inq.AccountHolderName); score < threshold {
		return newProblem(http.StatusUnprocessableEntity, CodeNameMismatch, "account_holder_name does not match the bank's name for the account",
			payout.FieldError{Field: "account_holder_name", Code: CodeNameMismatch,
				Message: "the bank's name for this account differs (score " + strconv.FormatFloat(score, 'f', 2, 64) + ", needs " + strconv.FormatFloat(threshold, 'f', 2, 64) + ")"})
	}
	return nil
}

// bankListing is one entry of GET /v1/banks.
type bankListing struct {
	Code             string     `json:"code"`
	Name             string     `json:"name"`
	Kind             string     `json:"kind"`
	HostBank         string     `json:"host_bank,omitempty"`
	MinAmount        int64      `json:"min_amount"`
	MaxAmount        int64      `json:"max_amount"`
	AccountDigitsMin int        `json:"account_digits_min"`
	AccountDigitsMax int        `json:"account_digits_max"`
	Available        bool       `json:"available"`
	Breaker          string     `json:"breaker"`
	Window           string     `json:"window,omitempty"`
	ClosedUntil      *time.Time `json:"closed_until,omitempty"`
}

func (s *Server) listBanks(w http.ResponseWriter, r *http.Request, who merchant.Principal) {
	breakers, err := s.breakerStates(r.Context(), who.Environment)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	profiles := s.Profiles
	if profiles == nil {
		profiles = connectors.DefaultProfiles()
	}
	now := s.now()
	all := connectors.All()
	out := make([]bankListing, 0, len(all))
	for _, b := range all {
		host := connectors.HostOf(b.Code)
		v := bankListing{Code: b.Code, Name: b.Name, Kind: b.Kind, HostBank: b.HostBank, MinAmount: b.MinAmount, MaxAmount: b.MaxAmount,
			AccountDigitsMin: b.AccountDigitsMin, AccountDigitsMax: b.AccountDigitsMax, Breaker: "closed"}
		if st, ok := breakers[host]; ok {
			v.Breaker = st
		}
		p := profiles.For(host)
		if until, closed := p.ClosedUntil(now); closed {
			u := until.UTC()
			v.ClosedUntil = &u
			v.Window = windowKind(p, now, until)
		}
		v.Available = v.Breaker != "open" && v.ClosedUntil == nil
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func windowKind(p connectors.Profile, now, until time.Time) string {
	for _, w := range p.Windows {
		if u, ok := (connectors.Profile{Windows: []connectors.Window{w}}).ClosedUntil(now); ok && u.Equal(until) {
			return w.Kind
		}
	}
	return connectors.WindowMaintenance
}

// breakerStates is the worst breaker state per bank of env's gateway that a
// dispatch worker reported recently: open beats half-open beats closed.
// Each environment has its own breakers: a production outage is not a
// sandbox one.
func (s *Server) breakerStates(ctx context.Context, env string) (map[string]string, error) {
	rows, err := s.Ledger.DB().Query(ctx, `SELECT bank, breaker FROM bank_health
		WHERE environment = $2 AND updated_at > now() - $1::bigint * interval '1 millisecond'`,
		healthFresh.Milliseconds(), env)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	rank := map[string]int{"closed": 0, "half-open": 1, "open": 2}
	out := map[string]string{}
	for rows.Next() {
		var bank, st string
		if err := rows.Scan(&bank, &st); err != nil {
			return nil, err
		}
		if cur, ok := out[bank]; !ok || rank[st] > rank[cur] {
			out[bank] = st
		}
	}
	return out, rows.Err()
}

// durationParam is the shape of older_than that api/openapi.yaml states:
// up to three number-unit parts with at most 5 digits each side of the
// point, so every value it allows parses without overflow.
var durationParam = regexp.MustCompile(`^(0|([0-9]{1,5}(\.[0-9]{1,5})?(ns|us|µs|ms|s|m|h)){1,3})$`)

// listUnresolved is the operators' list of payouts whose bank outcome is
// still unknown: GET /operator/v1/payouts/unresolved?older_than=10m&limit=100.
func (s *Server) listUnresolved(w http.ResponseWriter, r *http.Request) {
	olderThan := 10 * time.Minute
	if v := r.URL.Query().Get("older_than"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || !durationParam.MatchString(v) {
			writeError(w, newProblem(http.StatusBadRequest, CodeValidation, "older_than must be a duration such as 10m",
				payout.FieldError{Field: "older_than", Code: "INVALID_FORMAT", Message: "a Go duration: 90s, 10m, 2h"}))
			return
		}
		olderThan = d
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, newProblem(http.StatusBadRequest, CodeValidation, "limit must be 1 to 1000",
				payout.FieldError{Field: "limit", Code: "OUT_OF_RANGE", Message: "limit must be 1 to 1000"}))
			return
		}
		limit = n
	}
	list, err := s.Payouts.ListUnresolved(r.Context(), s.now().Add(-olderThan), limit)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list})
}
