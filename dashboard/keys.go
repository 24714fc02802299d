package dashboard

import (
	"errors"
	"net/http"
	"strings"

	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

type keysView struct {
	Keys      []keyView
	Scopes    []string
	NewSecret string // the new restricted key, shown once
	Label     string
	Chosen    map[string]bool
}

// keys lists the environment's restricted keys (never the keys
// themselves), as GET /v1/keys does.
func (s *Server) keys(w http.ResponseWriter, r *http.Request, rq *request) {
	s.showKeys(w, r, rq, keysView{}, "", "")
}

func (s *Server) showKeys(w http.ResponseWriter, r *http.Request, rq *request, v keysView, flash, errText string) {
	list, err := s.API.Merchants.EnvironmentKeys(r.Context(), rq.MerchantID, rq.Environment)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	now := s.now()
	for _, k := range list {
		if !k.Full {
			v.Keys = append(v.Keys, keyView{Key: k, Status: k.Status(now)})
		}
	}
	v.Scopes = merchant.AllScopes
	s.view(w, r, rq, "keys", "keys", "keys.title", v, flash, errText)
}

// createKey issues a restricted key (owner) through api.Server.IssueKey:
// the API's label and scope checks and its limit of live keys.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, rq *request) {
	label := strings.TrimSpace(r.PostFormValue("label"))
	scopes := r.PostForm["scope"]
	chosen := map[string]bool{}
	for _, sc := range scopes {
		chosen[sc] = true
	}
	secret, k, fes, err := s.API.IssueKey(r.Context(), rq.principal(), label, scopes)
	switch {
	case len(fes) > 0:
		s.showKeys(w, r, rq, keysView{Label: label, Chosen: chosen}, "", fieldMessage(fes))
		return
	case errors.Is(err, merchant.ErrTooManyKeys):
		s.showKeys(w, r, rq, keysView{Label: label, Chosen: chosen}, "", T(rq.lang, "keys.toomany"))
		return
	case s.settingsFailed(w, r, rq, err):
		return
	}
	s.Log.Info("restricted key issued from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "key_id", k.ID)
	s.showKeys(w, r, rq, keysView{NewSecret: secret}, "", "")
}

// revokeKey revokes a restricted key (owner); the full secret key is
// rotated on the settings page instead.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, rq *request) {
	k, err := s.API.Merchants.RevokeScopedKey(r.Context(), rq.principal(), r.PathValue("id"), s.now())
	switch {
	case errors.Is(err, merchant.ErrKeyNotFound):
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	case errors.Is(err, merchant.ErrFullKey):
		s.showKeys(w, r, rq, keysView{}, "", fieldMessage([]payout.FieldError{{Field: "key", Message: T(rq.lang, "keys.full")}}))
		return
	case err != nil:
		s.internal(w, r, rq.lang, err)
		return
	}
	s.API.ClearAuthCache()
	s.Log.Info("restricted key revoked from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "key_id", k.ID)
	s.showKeys(w, r, rq, keysView{}, T(rq.lang, "keys.revoked")+" "+k.Hint, "")
}
