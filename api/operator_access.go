package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// MaxRatePerSecond caps what the operator may set per budget.
const MaxRatePerSecond = 100_000

type keyView struct {
	merchant.Key
	Status string `json:"status"`
}

func (s *Server) environment(w http.ResponseWriter, r *http.Request) (string, bool) {
	env := r.PathValue("env")
	if env != payout.Sandbox && env != payout.Production {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "environment must be sandbox or production"))
		return "", false
	}
	return env, true
}

// listKeys shows the merchant's keys by id and hint, never the keys.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	if exists, err := s.Merchants.Exists(r.Context(), id); err != nil || !exists {
		if err != nil {
			s.internalError(w, r, err)
		} else {
			writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such merchant"))
		}
		return
	}
	keys, err := s.Merchants.Keys(r.Context(), id)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": keyViews(keys, s.now())})
}

// issueKey adds a key beside the environment's live keys, for a merchant
// that lost its key (a lost key can be revoked separately).
func (s *Server) issueKey(w http.ResponseWriter, r *http.Request) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	key, keyID, err := s.Merchants.IssueKey(r.Context(), id, env, s.now())
	if errors.Is(err, merchant.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this merchant's "+env+" is not active"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "key.issue", id, map[string]string{"environment": env, "key_id": keyID})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]string{"merchant_id": id, "environment": env, "key_id": keyID, "secret_key": key})
}

// revokeKey makes a key fail at once.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	keyID := r.PathValue("key_id")
	if len(keyID) > 64 {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such key"))
		return
	}
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	k, err := s.Merchants.RevokeKey(r.Context(), id, keyID, s.now())
	if errors.Is(err, merchant.ErrKeyNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such key"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "key.revoke", id, map[string]string{"key_id": k.ID, "environment": k.Environment})
	s.Log.Info("secret key revoked", "merchant_id", id, "environment", k.Environment, "key_id", k.ID)
	writeJSON(w, http.StatusOK, keyView{Key: k, Status: k.Status(s.now())})
}

// setRateLimits sets an environment's request rates; 0 returns a budget to
// the service default.
func (s *Server) setRateLimits(w http.ResponseWriter, r *http.Request) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	var in merchant.Limits
	if prob := decodeJSON(w, r, maxOperatorBody, &in); prob != nil {
		writeError(w, prob)
		return
	}
	var fields []payout.FieldError
	check := func(field string, v int) {
		if v < 0 || v > MaxRatePerSecond {
			fields = append(fields, payout.FieldError{Field: field, Code: "OUT_OF_RANGE",
				Message: field + " must be 0 (the service default) to " + strconv.Itoa(MaxRatePerSecond)})
		}
	}
	check("create_per_second", in.CreatePerSecond)
	check("read_per_second", in.ReadPerSecond)
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the request has invalid fields", fields...))
		return
	}
	err := s.Merchants.SetLimits(r.Context(), id, env, s.now(), in)
	if errors.Is(err, merchant.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this merchant's "+env+" is not active"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "rate_limits.set", id, map[string]any{"environment": env, "limits": in})
	writeJSON(w, http.StatusOK, map[string]any{"configured": in, "effective": in.Or(s.defaultLimits())})
}

// settingsAudit pages through the settings audit log, newest first.
func (s *Server) settingsAudit(w http.ResponseWriter, r *http.Request) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	env := q.Get("environment")
	var fields []payout.FieldError
	if env != "" && env != payout.Sandbox && env != payout.Production {
		fields = append(fields, payout.FieldError{Field: "environment", Code: "INVALID_VALUE", Message: "environment must be sandbox or production"})
	}
	limit, before := 50, int64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			fields = append(fields, payout.FieldError{Field: "limit", Code: "OUT_OF_RANGE", Message: "limit must be 1 to 500"})
		}
		limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			fields = append(fields, payout.FieldError{Field: "before", Code: "INVALID_VALUE", Message: "before must be an entry id from an earlier page"})
		}
		before = n
	}
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusBadRequest, CodeValidation, "the query has invalid parameters", fields...))
		return
	}
	entries, err := s.Merchants.AuditLog(r.Context(), id, env, before, limit)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	page := map[string]any{"data": entries}
	if len(entries) == limit {
		page["next_before"] = entries[len(entries)-1].ID
	}
	if entries == nil {
		page["data"] = []merchant.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, page)
}
