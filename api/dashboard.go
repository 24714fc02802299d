package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/reports"
)

// This file is what the merchant dashboard (package dashboard) shares with
// the merchant API: the same validation and the same stores, called in the
// process, so a change made in the dashboard is the change the API would
// make. Each function is a thin exported door to the handler's own code.

// ClientAddr is the caller's address as the IP whitelist sees it (the
// socket's peer, or X-Forwarded-For from a trusted proxy).
func (s *Server) ClientAddr(r *http.Request) netip.Addr { return s.clientAddr(r) }

// ParsePayoutFilter reads the filters of GET /v1/disbursements from q.
func ParsePayoutFilter(q url.Values) (payout.Filter, []payout.FieldError) {
	f, prob := payoutFilterOf(q)
	if prob != nil {
		return f, prob.Fields
	}
	return f, nil
}

// ChangeSettings validates and applies a change of the callback URL and/or
// the IP whitelist (nil leaves one as it is) as PATCH /v1/settings does,
// recording actor in the settings audit log. Invalid fields change nothing
// and come back as field errors.
func (s *Server) ChangeSettings(ctx context.Context, p merchant.Principal, actor string, callbackURL *string, whitelist *[]string) (merchant.Access, []payout.FieldError, error) {
	sp := settingsPatch{CallbackURL: callbackURL, IPWhitelist: whitelist}
	ch, errs := sp.validate(p.Environment, s.CallbackPolicy.AllowInsecureSandbox)
	if len(errs) > 0 {
		return merchant.Access{}, errs, nil
	}
	if callbackURL != nil && *callbackURL != "" && s.Callbacks != nil {
		if prob := s.checkCallbackURL(ctx, p.Environment, *callbackURL); prob != nil {
			if len(prob.Fields) > 0 {
				return merchant.Access{}, prob.Fields, nil
			}
			return merchant.Access{}, nil, errors.New(prob.Message)
		}
	}
	if _, err := s.Merchants.Access(ctx, p.MerchantID, p.Environment, s.now()); err != nil {
		return merchant.Access{}, nil, err
	}
	a, err := s.Merchants.UpdateAccess(ctx, p.MerchantID, p.Environment, actor, s.now(), ch)
	if err == nil {
		s.ClearAuthCache()
		s.Log.Info("settings changed", "merchant_id", p.MerchantID, "environment", p.Environment, "actor", actor,
			"callback_url_changed", ch.CallbackURL != nil, "ip_whitelist_changed", ch.IPWhitelist != nil)
	}
	return a, nil, err
}

// CallbackSecret is the secret the environment's callbacks are signed with now.
func (s *Server) CallbackSecret(ctx context.Context, p merchant.Principal) (string, error) {
	var v settingsView
	err := s.callbackSecret(ctx, &v, p)
	return v.CallbackSecret, err
}

// ParseScheduledAt reads a batch's or payout's scheduled_at (RFC 3339;
// empty: at once) as the API does: a time in the future and at most
// hold.MaxAhead ahead, else its field error.
func (s *Server) ParseScheduledAt(raw string) (*time.Time, []payout.FieldError) {
	at, prob := s.parseScheduledAt(raw)
	if prob != nil {
		return nil, prob.Fields
	}
	return at, nil
}

// ClearAuthCache forgets this instance's cached key lookups: the
// dashboard calls it after a change that narrows access (a key revoked,
// the IP whitelist changed), as the API's own routes do (clearsAuth), so
// the change holds at once on this instance.
func (s *Server) ClearAuthCache() { s.authCache.clear() }

// KeyGrace is how long a rotated-away secret key keeps working.
func (s *Server) KeyGrace() time.Duration { return s.keyGrace() }

// StatementPage is one page of GET /v1/balance/transactions: the movements
// after the entry after, from (included) to (excluded), and the cursor
// entry of the next page (0: none).
func (s *Server) StatementPage(ctx context.Context, p merchant.Principal, from, to time.Time, after int64, limit int) ([]ledger.StatementLine, int64, error) {
	return s.statementPage(ctx, p, statementParams{from: from, to: to}, after, limit)
}

// ExportReport writes GET /v1/reports/disbursements.csv to w.
func (s *Server) ExportReport(ctx context.Context, p merchant.Principal, period reports.Period, f reports.Filter, w io.Writer) error {
	if s.Reports == nil {
		return ErrNoReports
	}
	return s.Reports.Export(ctx, reports.Scope{MerchantID: p.MerchantID, Environment: p.Environment}, period, f, s.exportDetails, w)
}

// ErrNoReports: the server has no reports store (no ClickHouse configured).
var ErrNoReports = errors.New("api: reports are not configured on this server")

// Dashboard is what the operator API asks of the merchant dashboard's
// users: the production activations merchants requested, and password
// reset links. dashboard.Store implements it.
type Dashboard interface {
	ActivationRequests(ctx context.Context) ([]ActivationRequest, error)
	// PasswordResetLink issues a one-time link for the user with email;
	// ErrNoSuchUser when there is none.
	PasswordResetLink(ctx context.Context, email string) (merchantID, link string, expires time.Time, err error)
}

// ErrNoSuchUser: no dashboard user has that email.
var ErrNoSuchUser = errors.New("api: no dashboard user with this email")

// ActivationRequest is a merchant's request for production, waiting for
// the operator's POST /operator/v1/merchants/{id}/production/activate.
type ActivationRequest struct {
	MerchantID   string    `json:"merchant_id"`
	MerchantName string    `json:"merchant_name"`
	Environment  string    `json:"environment"`
	RequestedBy  string    `json:"requested_by"`
	RequestedAt  time.Time `json:"requested_at"`
}

func (s *Server) dashboardReady(w http.ResponseWriter) bool {
	if s.Dashboard == nil {
		writeError(w, newProblem(http.StatusServiceUnavailable, CodeUnavailable, "the merchant dashboard is not configured on this server"))
		return false
	}
	return true
}

// listActivationRequests serves GET /operator/v1/activation-requests.
func (s *Server) listActivationRequests(w http.ResponseWriter, r *http.Request) {
	if !s.dashboardReady(w) {
		return
	}
	list, err := s.Dashboard.ActivationRequests(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if list == nil {
		list = []ActivationRequest{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list})
}

// passwordReset serves POST /operator/v1/users/password-reset: a one-time
// link the operator hands to the user (by a channel the operator trusts).
func (s *Server) passwordReset(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email string `json:"email"`
	}
	if prob := decodeJSON(w, r, maxOperatorBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	if in.Email == "" || utf8.RuneCountInString(in.Email) > 254 || !payout.CleanText(in.Email) {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields",
			payout.FieldError{Field: "email", Code: "INVALID_FORMAT", Message: "email must be the user's email address"}))
		return
	}
	if !s.dashboardReady(w) {
		return
	}
	merchantID, link, expires, err := s.Dashboard.PasswordResetLink(r.Context(), in.Email)
	if errors.Is(err, ErrNoSuchUser) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no dashboard user has this email"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "user.password_reset", merchantID, map[string]any{"email": in.Email, "expires_at": expires.UTC()})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"email": in.Email, "reset_url": link, "expires_at": expires.UTC()})
}
