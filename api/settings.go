package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// MaxCallbackURL is the longest callback URL accepted, in bytes.
const MaxCallbackURL = 2048

// settingsView is GET /v1/settings, and PATCH's answer.
type settingsView struct {
	Environment    string          `json:"environment"`
	CallbackURL    string          `json:"callback_url"`
	CallbackSecret string          `json:"callback_secret"`
	IPWhitelist    []string        `json:"ip_whitelist"`
	RateLimits     merchant.Limits `json:"rate_limits"`
	// CallbackBatchSize: 1 sends one POST per callback; 2..100 sends up to
	// that many in one signed "callbacks.batch" POST (docs/callbacks.md).
	CallbackBatchSize int `json:"callback_batch_size"`
	// CallbackConcurrency: POSTs in flight to callback_url at once.
	CallbackConcurrency int      `json:"callback_concurrency"`
	Warnings            []string `json:"warnings,omitempty"`
}

// callbackSecret is the secret callbacks are signed with now: the callback
// store's current one (the store seeds it from the secret made at
// activation, and rotation replaces it).
func (s *Server) callbackSecret(ctx context.Context, v *settingsView, p merchant.Principal) error {
	if s.Callbacks == nil {
		return nil
	}
	secret, err := s.Callbacks.Secret(ctx, p.MerchantID, p.Environment)
	if err == nil {
		v.CallbackSecret = secret
	}
	return err
}

func (s *Server) view(a merchant.Access) settingsView {
	v := settingsView{
		Environment: a.Environment, CallbackURL: a.CallbackURL, CallbackSecret: a.CallbackSecret,
		IPWhitelist: make([]string, len(a.IPWhitelist)), RateLimits: a.Limits.Or(s.defaultLimits()),
		CallbackBatchSize: a.CallbackBatchSize, CallbackConcurrency: a.CallbackConcurrency,
	}
	for i, p := range a.IPWhitelist {
		v.IPWhitelist[i] = p.String()
	}
	return v
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	a, err := s.Merchants.Access(r.Context(), p.MerchantID, p.Environment, s.now())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	v := s.view(a)
	if err := s.callbackSecret(r.Context(), &v, p); err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// settingsPatch is PATCH /v1/settings: a field left out, or null, stays as it is.
type settingsPatch struct {
	CallbackURL         *string   `json:"callback_url"`
	IPWhitelist         *[]string `json:"ip_whitelist"`
	CallbackBatchSize   *int      `json:"callback_batch_size"`
	CallbackConcurrency *int      `json:"callback_concurrency"`
}

// validate checks the patch and returns the change it asks for.
func (sp settingsPatch) validate(environment string, insecureSandbox bool) (merchant.AccessChange, []payout.FieldError) {
	var ch merchant.AccessChange
	var errs []payout.FieldError
	if sp.CallbackURL == nil && sp.IPWhitelist == nil && sp.CallbackBatchSize == nil && sp.CallbackConcurrency == nil {
		return ch, []payout.FieldError{{Field: "callback_url", Code: "REQUIRED",
			Message: "send at least one of callback_url, ip_whitelist, callback_batch_size, callback_concurrency"}}
	}
	between := func(field string, v *int, lo, hi int) {
		if v == nil {
			return
		}
		if *v < lo || *v > hi {
			errs = append(errs, payout.FieldError{Field: field, Code: "OUT_OF_RANGE",
				Message: fmt.Sprintf("%s must be an integer from %d to %d", field, lo, hi)})
		}
	}
	between("callback_batch_size", sp.CallbackBatchSize, 1, merchant.MaxCallbackBatchSize)
	between("callback_concurrency", sp.CallbackConcurrency, 1, merchant.MaxCallbackConcurrency)
	ch.CallbackBatchSize, ch.CallbackConcurrency = sp.CallbackBatchSize, sp.CallbackConcurrency
	if sp.CallbackURL != nil {
		if fe := checkCallbackURL(*sp.CallbackURL, environment == payout.Sandbox && insecureSandbox); fe != nil {
			errs = append(errs, *fe)
		} else {
			ch.CallbackURL = sp.CallbackURL
		}
	}
	if sp.IPWhitelist != nil {
		list, fes := parseWhitelist(*sp.IPWhitelist)
		errs = append(errs, fes...)
		ch.IPWhitelist = &list
	}
	return ch, errs
}

// parseWhitelist normalizes the entries, dropping repeats.
func parseWhitelist(entries []string) ([]netip.Prefix, []payout.FieldError) {
	if len(entries) > merchant.MaxWhitelist {
		return nil, []payout.FieldError{{Field: "ip_whitelist", Code: "TOO_MANY",
			Message: fmt.Sprintf("ip_whitelist holds at most %d entries", merchant.MaxWhitelist)}}
	}
	out := make([]netip.Prefix, 0, len(entries))
	var errs []payout.FieldError
	seen := map[netip.Prefix]bool{}
	for i, e := range entries {
		p, err := merchant.ParseNetwork(e)
		if err != nil {
			msg := "each entry must be an IPv4 or IPv6 address or CIDR prefix"
			if payout.CleanText(e) && len(e) <= 64 {
				msg = err.Error() + ": " + msg
			}
			errs = append(errs, payout.FieldError{Field: "ip_whitelist[" + strconv.Itoa(i) + "]", Code: "INVALID_FORMAT", Message: msg})
			continue
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, errs
}

// checkCallbackURL applies the rules a callback URL must meet now: an
// absolute http(s) URL of printable ASCII, at most MaxCallbackURL bytes,
// without credentials or fragment; https, and a host that is not a
// loopback, private, link-local, metadata or otherwise internal literal
// address or localhost, unless insecure (sandbox with
// --sandbox-insecure-callbacks). Names that resolve to such addresses are
// the callback stage's to refuse at delivery. Empty clears the URL.
func checkCallbackURL(raw string, insecure bool) *payout.FieldError {
	bad := func(code, msg string) *payout.FieldError {
		return &payout.FieldError{Field: "callback_url", Code: code, Message: msg}
	}
	if raw == "" {
		return nil
	}
	if len(raw) > MaxCallbackURL {
		return bad("TOO_LONG", fmt.Sprintf("callback_url must be at most %d bytes", MaxCallbackURL))
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] < 0x21 || raw[i] > 0x7e {
			return bad("INVALID_CHARACTERS", "callback_url must be printable ASCII; percent-encode anything else")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return bad("INVALID_URL", "callback_url must be an absolute http or https URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return bad("INVALID_URL", "callback_url must use https")
	}
	if u.User != nil {
		return bad("INVALID_URL", "callback_url must not carry a user name or password")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return bad("INVALID_URL", "callback_url must not have a #fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("INVALID_URL", "callback_url has an invalid port")
		}
	}
	if insecure {
		return nil
	}
	if u.Scheme != "https" {
		return bad("INSECURE_URL", "callback_url must use https (sandbox may use http when the service allows insecure sandbox callbacks)")
	}
	if internalHost(u.Hostname()) {
		return bad("FORBIDDEN_HOST", "callback_url must name a public host, not a loopback, private, link-local or metadata address")
	}
	return nil
}

// Networks a literal callback host may not be in, beyond what netip classifies.
var internalNetworks = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT; cloud metadata at 100.100.100.200
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach any IPv4 address
}

func internalHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
			a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || a.Zone() != "" {
			return true
		}
		for _, n := range internalNetworks {
			if n.Contains(a) {
				return true
			}
		}
		return false
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "metadata.google.internal" {
		return true
	}
	// A name whose last label is numeric or hex (2130706433, 0x7f.1,
	// 127.1) is an address in a form some resolvers accept; no real TLD is.
	last := host[strings.LastIndex(host, ".")+1:]
	if last == "" || strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == "" {
		return true
	}
	return false
}

func (s *Server) patchSettings(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if p.Retiring {
		writeError(w, retiringKey())
		return
	}
	var in settingsPatch
	if prob := decodeJSON(w, r, maxSettingsBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	ch, errs := in.validate(p.Environment, s.CallbackPolicy.AllowInsecureSandbox)
	if len(errs) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", errs...))
		return
	}
	// The literal rules passed; now what the host name resolves to (a name
	// pointing at loopback or a private network is refused too).
	if in.CallbackURL != nil && *in.CallbackURL != "" && s.Callbacks != nil {
		if prob := s.checkCallbackURL(r.Context(), p.Environment, *in.CallbackURL); prob != nil {
			writeError(w, prob)
			return
		}
	}
	if _, err := s.Merchants.Access(r.Context(), p.MerchantID, p.Environment, s.now()); err != nil {
		s.internalError(w, r, err) // makes the callback secret of an environment that has none yet
		return
	}
	a, err := s.Merchants.UpdateAccess(r.Context(), p.MerchantID, p.Environment, p.KeyID, s.now(), ch)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	v := s.view(a)
	if err := s.callbackSecret(r.Context(), &v, p); err != nil {
		s.internalError(w, r, err)
		return
	}
	if ch.IPWhitelist != nil {
		if addr := s.clientAddr(r); !merchant.Allows(a.IPWhitelist, addr) {
			v.Warnings = append(v.Warnings, "ip_whitelist does not include the address of this call ("+addrString(addr)+
				"); calls from it will now be refused with 403")
		}
	}
	s.Log.Info("settings changed", "merchant_id", p.MerchantID, "environment", p.Environment, "key_id", p.KeyID,
		"callback_url_changed", ch.CallbackURL != nil, "ip_whitelist_changed", ch.IPWhitelist != nil,
		"callback_batch_size", a.CallbackBatchSize, "callback_concurrency", a.CallbackConcurrency)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, v)
}

func retiringKey() *problem {
	return newProblem(http.StatusForbidden, CodeForbidden,
		"this secret key was rotated and only works until its grace period ends; use the current key to change settings or rotate")
}

// keyGrace is how long a rotated-away key keeps working.
func (s *Server) keyGrace() time.Duration {
	if s.KeyGracePeriod > 0 {
		return s.KeyGracePeriod
	}
	return DefaultKeyGracePeriod
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	if p.Retiring {
		writeError(w, retiringKey())
		return
	}
	rot, err := s.Merchants.RotateKey(r.Context(), p, s.now(), s.keyGrace())
	switch {
	case errors.Is(err, merchant.ErrKeyRetiring):
		writeError(w, retiringKey())
		return
	case errors.Is(err, merchant.ErrUnauthorized):
		writeError(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "the secret key is unknown, expired or revoked"))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	s.Log.Info("secret key rotated", "merchant_id", p.MerchantID, "environment", p.Environment, "by_key_id", p.KeyID,
		"new_key_id", rot.KeyID, "retired_key_ids", rot.Retired, "retired_keys_expire_at", rot.Expires.UTC())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{
		"environment":             p.Environment,
		"secret_key":              rot.Key,
		"key_id":                  rot.KeyID,
		"previous_key_ids":        rot.Retired,
		"previous_keys_expire_at": rot.Expires.UTC(),
	})
}
