package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

type keyView struct {
	merchant.Key
	Status string
}

type settingsView struct {
	Active         bool
	Keys           []keyView
	NewKey         string    // shown once after a rotation
	OldKeysExpire  time.Time // the grace of the rotated-away keys
	Whitelist      string    // one entry per line
	ClientAddr     string
	InWhitelist    bool
	CallbackURL    string
	CallbackSecret string
	FieldErrors    []payout.FieldError
	Test           *callbacks.Result
	Audit          []merchant.AuditEntry
}

// settings is the Settings menu: secret key, IP whitelist, callback URL.
func (s *Server) settings(w http.ResponseWriter, r *http.Request, rq *request) {
	s.showSettings(w, r, rq, settingsView{}, "", "")
}

func (s *Server) showSettings(w http.ResponseWriter, r *http.Request, rq *request, v settingsView, flash, errText string) {
	ctx := r.Context()
	a, err := s.API.Merchants.Access(ctx, rq.MerchantID, rq.Environment, s.now())
	if errors.Is(err, merchant.ErrNotFound) {
		s.view(w, r, rq, "settings", "settings", "set.title", v, flash, T(rq.lang, "err.notactive"))
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v.Active = true
	keys, err := s.API.Merchants.Keys(ctx, rq.MerchantID)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	now := s.now()
	for _, k := range keys {
		if k.Environment == rq.Environment && k.Status(now) != "EXPIRED" && k.Status(now) != "REVOKED" {
			v.Keys = append(v.Keys, keyView{Key: k, Status: k.Status(now)})
		}
	}
	addr := s.API.ClientAddr(r)
	v.ClientAddr = addr.String()
	v.InWhitelist = merchant.Allows(a.IPWhitelist, addr)
	if v.Whitelist == "" && v.FieldErrors == nil {
		lines := make([]string, len(a.IPWhitelist))
		for i, p := range a.IPWhitelist {
			lines[i] = p.String()
		}
		v.Whitelist = strings.Join(lines, "\n")
	}
	if v.CallbackURL == "" && v.FieldErrors == nil {
		v.CallbackURL = a.CallbackURL
	}
	if v.CallbackSecret, err = s.API.CallbackSecret(ctx, rq.principal()); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if v.Audit, err = s.API.Merchants.AuditLog(ctx, rq.MerchantID, rq.Environment, 0, 20); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.view(w, r, rq, "settings", "settings", "set.title", v, flash, errText)
}

// rotateKey makes a new secret key, shown once; the old keys keep working
// for the API's grace period.
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, rq *request) {
	rot, err := s.API.Merchants.RotateKeyAs(r.Context(), rq.MerchantID, rq.Environment, rq.Actor(), s.now(), s.API.KeyGrace())
	if s.settingsFailed(w, r, rq, err) {
		return
	}
	s.Log.Info("secret key rotated from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "new_key_id", rot.KeyID, "retired_key_ids", rot.Retired)
	v := settingsView{NewKey: rot.Key}
	if len(rot.Retired) > 0 {
		v.OldKeysExpire = rot.Expires
	}
	s.showSettings(w, r, rq, v, "", "")
}

// saveWhitelist replaces the IP whitelist (one entry per line), validated
// as PATCH /v1/settings validates it.
func (s *Server) saveWhitelist(w http.ResponseWriter, r *http.Request, rq *request) {
	raw := r.PostFormValue("ip_whitelist")
	entries := []string{}
	for _, line := range strings.FieldsFunc(raw, func(c rune) bool { return c == '\n' || c == '\r' || c == ',' }) {
		if line = strings.TrimSpace(line); line != "" {
			entries = append(entries, line)
		}
	}
	s.changeSettings(w, r, rq, nil, &entries, settingsView{Whitelist: raw})
}

// saveCallback sets the callback URL, validated as PATCH /v1/settings does.
func (s *Server) saveCallback(w http.ResponseWriter, r *http.Request, rq *request) {
	u := strings.TrimSpace(r.PostFormValue("callback_url"))
	s.changeSettings(w, r, rq, &u, nil, settingsView{CallbackURL: u})
}

// changeSettings applies a change through the merchant API's
// ChangeSettings; on invalid fields the page shows them with the typed
// values (onError) kept.
func (s *Server) changeSettings(w http.ResponseWriter, r *http.Request, rq *request, callbackURL *string, whitelist *[]string, onError settingsView) {
	_, fes, err := s.API.ChangeSettings(r.Context(), rq.principal(), rq.Actor(), callbackURL, whitelist)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if len(fes) > 0 {
		onError.FieldErrors = fes
		s.showSettings(w, r, rq, onError, "", fieldMessage(fes))
		return
	}
	s.showSettings(w, r, rq, settingsView{}, T(rq.lang, "set.saved"), "")
}

// testCallback POSTs a signed test callback to the saved URL and shows
// the receiver's answer.
func (s *Server) testCallback(w http.ResponseWriter, r *http.Request, rq *request) {
	a, err := s.API.Merchants.Access(r.Context(), rq.MerchantID, rq.Environment, s.now())
	if s.settingsFailed(w, r, rq, err) {
		return
	}
	res := s.Callbacks.Test(r.Context(), rq.MerchantID, rq.Environment, a.CallbackURL, s.now())
	s.Log.Info("test callback sent", "merchant_id", rq.MerchantID, "environment", rq.Environment, "user_id", rq.ID,
		"status_code", res.StatusCode, "err", res.Err)
	s.showSettings(w, r, rq, settingsView{Test: &res}, "", "")
}

// settingsFailed answers an action on an environment that failed: 409 when
// the environment is not active, 500 otherwise. It reports whether it answered.
func (s *Server) settingsFailed(w http.ResponseWriter, r *http.Request, rq *request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, merchant.ErrNotFound):
		s.fail(w, r, rq, http.StatusConflict, T(rq.lang, "err.notactive"))
	default:
		s.internal(w, r, rq.lang, err)
	}
	return true
}

func fieldMessage(fes []payout.FieldError) string {
	msgs := make([]string, len(fes))
	for i, fe := range fes {
		msgs[i] = fe.Field + ": " + fe.Message
	}
	return strings.Join(msgs, "; ")
}

// auditValue shows an audit entry's JSON value compactly.
func auditValue(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "-"
	}
	return string(raw)
}
