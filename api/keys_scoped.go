package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// CodeInsufficientScope: a restricted key called outside its scopes (403).
const CodeInsufficientScope = "INSUFFICIENT_SCOPE"

// scopeFull marks the calls only the environment's full secret key may
// make: managing keys and rotating the key itself (a restricted key that
// could would grant itself every scope).
const scopeFull = "full"

// routeScopes is the scope each merchant route needs, by the mux pattern
// ("METHOD /path"). A route missing here needs the full key (fail closed);
// TestEveryMerchantRouteHasAScope keeps the table complete.
var routeScopes = map[string]string{
	"POST /v1/disbursements":                   merchant.ScopePayoutsCreate,
	"POST /v1/disbursements/{id}/cancel":       merchant.ScopePayoutsCreate,
	"POST /v1/batches":                         merchant.ScopePayoutsCreate,
	"POST /v1/batches/quote":                   merchant.ScopePayoutsCreate,
	"POST /v1/batches/{id}/cancel":             merchant.ScopePayoutsCreate,
	"POST /v1/account-inquiry":                 merchant.ScopePayoutsCreate,
	"POST /v1/account-inquiries":               merchant.ScopePayoutsCreate,
	"GET /v1/account-inquiries/{id}":           merchant.ScopePayoutsRead,
	"GET /v1/disbursements":                    merchant.ScopePayoutsRead,
	"GET /v1/disbursements/{id}":               merchant.ScopePayoutsRead,
	"GET /v1/batches":                          merchant.ScopePayoutsRead,
	"GET /v1/batches/{id}":                     merchant.ScopePayoutsRead,
	"GET /v1/batches/{id}/items":               merchant.ScopePayoutsRead,
	"GET /v1/balance":                          merchant.ScopePayoutsRead,
	"GET /v1/banks":                            merchant.ScopePayoutsRead,
	"GET /v1/events":                           merchant.ScopePayoutsRead,
	"GET /v1/balance/transactions":             merchant.ScopeReports,
	"GET /v1/balance/transactions.csv":         merchant.ScopeReports,
	"GET /v1/reports/summary":                  merchant.ScopeReports,
	"GET /v1/reports/disbursements.csv":        merchant.ScopeReports,
	"GET /v1/settings":                         merchant.ScopeSettings,
	"PATCH /v1/settings":                       merchant.ScopeSettings,
	"POST /v1/settings/callback-secret/rotate": merchant.ScopeSettings,
	"GET /v1/callbacks":                        merchant.ScopeSettings,
	"GET /v1/callbacks/{id}":                   merchant.ScopeSettings,
	"POST /v1/callbacks/{id}/redeliver":        merchant.ScopeSettings,
	"POST /v1/disbursements/{id}/approve":      merchant.ScopeBatchesApprove,
	"POST /v1/disbursements/{id}/reject":       merchant.ScopeBatchesApprove,
	"POST /v1/batches/{id}/approve":            merchant.ScopeBatchesApprove,
	"POST /v1/batches/{id}/reject":             merchant.ScopeBatchesApprove,
	"GET /v1/approvals":                        merchant.ScopePayoutsRead,
	"GET /v1/approvals/policy":                 merchant.ScopeSettings,
	"PUT /v1/approvals/policy":                 merchant.ScopeSettings,
	"GET /v1/controls":                         merchant.ScopeSettings,
	"PUT /v1/controls/velocity":                merchant.ScopeSettings,
	"POST /v1/controls/pause":                  merchant.ScopeSettings,
	"POST /v1/controls/resume":                 merchant.ScopeSettings,
	"POST /v1/settings/secret-key/rotate":      scopeFull,
	"GET /v1/keys":                             scopeFull,
	"POST /v1/keys":                            scopeFull,
	"POST /v1/keys/{id}/revoke":                scopeFull,
}

// scopeProblem answers 403 INSUFFICIENT_SCOPE when p's key does not cover
// the route r was matched to.
func scopeProblem(r *http.Request, p merchant.Principal) *problem {
	if p.Full() {
		return nil
	}
	need, ok := routeScopes[r.Pattern]
	if !ok {
		need = scopeFull
	}
	if need != scopeFull && p.Has(need) {
		return nil
	}
	msg := "this key lacks the scope " + need + "; use a key that has it"
	if need == scopeFull {
		msg = "only the environment's full secret key may make this call"
	}
	pr := newProblem(http.StatusForbidden, CodeInsufficientScope, msg)
	pr.RequiredScope = need
	return pr
}

// keyTouchEvery is how often one API instance records a key's use: the
// last-used time is exact to this, and a busy key costs one write per
// interval instead of one per request.
const keyTouchEvery = time.Minute

// keyUse remembers when this instance last recorded each key's use.
type keyUse struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// touchKey records p's key as used now, at most once per keyTouchEvery.
// A failed write is logged: it must not fail the call.
func (s *Server) touchKey(ctx context.Context, p merchant.Principal) {
	now := s.now()
	s.keyUse.mu.Lock()
	if s.keyUse.last == nil {
		s.keyUse.last = map[string]time.Time{}
	}
	if t, ok := s.keyUse.last[p.KeyID]; ok && now.Sub(t) < keyTouchEvery && !now.Before(t) {
		s.keyUse.mu.Unlock()
		return
	}
	s.keyUse.last[p.KeyID] = now
	s.keyUse.mu.Unlock()
	if err := s.Merchants.TouchKey(ctx, p.KeyID, now); err != nil {
		s.Log.Warn("record key use", "merchant_id", p.MerchantID, "key_id", p.KeyID, "err", err)
	}
}

type keyRequest struct {
	Label  string   `json:"label"`
	Scopes []string `json:"scopes"`
}

// validate checks a key request and returns its scopes in AllScopes order.
func (in keyRequest) validate() ([]string, []payout.FieldError) {
	var errs []payout.FieldError
	label := in.Label
	switch {
	case label == "":
		errs = append(errs, payout.FieldError{Field: "label", Code: "REQUIRED", Message: "name the key (1 to 64 characters)"})
	case utf8.RuneCountInString(label) > 64 || strings.IndexFunc(label, unicode.IsControl) >= 0:
		errs = append(errs, payout.FieldError{Field: "label", Code: "INVALID_VALUE", Message: "label must be 1 to 64 characters without control characters"})
	}
	if len(in.Scopes) == 0 {
		errs = append(errs, payout.FieldError{Field: "scopes", Code: "REQUIRED", Message: "give at least one scope of " + strings.Join(merchant.AllScopes, ", ")})
	}
	var scopes []string
	for _, sc := range merchant.AllScopes {
		if slices.Contains(in.Scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	for _, sc := range in.Scopes {
		if !slices.Contains(merchant.AllScopes, sc) {
			errs = append(errs, payout.FieldError{Field: "scopes", Code: "INVALID_VALUE", Message: "scopes must be among " + strings.Join(merchant.AllScopes, ", ")})
			break
		}
	}
	return scopes, errs
}

// createKey serves POST /v1/keys: a restricted key, shown once.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if p.Retiring {
		writeError(w, retiringKey())
		return
	}
	var in keyRequest
	if prob := decodeJSON(w, r, maxSettingsBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	key, k, errs, err := s.IssueKey(r.Context(), p, in.Label, in.Scopes)
	if len(errs) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the key request has invalid fields", errs...))
		return
	}
	if errors.Is(err, merchant.ErrTooManyKeys) {
		writeError(w, newProblem(http.StatusConflict, CodeConflict, "this environment already has the most live restricted keys; revoke one first"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, struct {
		keyView
		SecretKey string `json:"secret_key"`
	}{keyView{Key: k, Status: k.Status(s.now())}, key})
}

// IssueKey validates a key request as POST /v1/keys does and issues the
// restricted key, made by p.KeyID: the secret (shown once) and the key.
// Invalid fields come back as field errors; merchant.ErrTooManyKeys when
// the environment has the most live restricted keys.
func (s *Server) IssueKey(ctx context.Context, p merchant.Principal, label string, scopes []string) (string, merchant.Key, []payout.FieldError, error) {
	scopes, errs := keyRequest{Label: label, Scopes: scopes}.validate()
	if len(errs) > 0 {
		return "", merchant.Key{}, errs, nil
	}
	key, k, err := s.Merchants.IssueScopedKey(ctx, p, label, scopes, s.now())
	if err == nil {
		s.Log.Info("restricted key issued", "merchant_id", p.MerchantID, "environment", p.Environment, "by_key_id", p.KeyID,
			"key_id", k.ID, "scopes", k.Scopes)
	}
	return key, k, nil, err
}

// listMerchantKeys serves GET /v1/keys: the environment's keys, never the
// keys themselves.
func (s *Server) listMerchantKeys(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	keys, err := s.Merchants.EnvironmentKeys(r.Context(), p.MerchantID, p.Environment)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": keyViews(keys, s.now())})
}

// keyViews shows keys with their status at now.
func keyViews(keys []merchant.Key, now time.Time) []keyView {
	out := make([]keyView, len(keys))
	for i, k := range keys {
		out[i] = keyView{Key: k, Status: k.Status(now)}
	}
	return out
}

// revokeMerchantKey serves POST /v1/keys/{id}/revoke for restricted keys.
func (s *Server) revokeMerchantKey(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	if p.Retiring {
		writeError(w, retiringKey())
		return
	}
	k, err := s.Merchants.RevokeScopedKey(r.Context(), p, r.PathValue("id"), s.now())
	switch {
	case errors.Is(err, merchant.ErrKeyNotFound):
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such key in this environment"))
		return
	case errors.Is(err, merchant.ErrFullKey):
		writeError(w, newProblem(http.StatusConflict, CodeConflict, "the full secret key is retired by POST /v1/settings/secret-key/rotate, not revoked"))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	s.Log.Info("restricted key revoked", "merchant_id", p.MerchantID, "environment", p.Environment, "by_key_id", p.KeyID, "key_id", k.ID)
	writeJSON(w, http.StatusOK, keyView{Key: k, Status: k.Status(s.now())})
}
