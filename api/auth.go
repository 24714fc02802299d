package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/disburse/disburse/merchant"
)

type principalKey struct{}

// authed requires HTTP Basic auth with a secret key as the user name.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, merchant.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, _, ok := r.BasicAuth()
		if !ok || key == "" || len(key) > 256 {
			w.Header().Set("WWW-Authenticate", `Basic realm="disburse"`)
			writeError(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "authenticate with HTTP Basic, your secret key as the user name and an empty password"))
			return
		}
		p, err := s.Merchants.Authenticate(r.Context(), key, s.now())
		if errors.Is(err, merchant.ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Basic realm="disburse"`)
			writeError(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "the secret key is unknown, expired or revoked"))
			return
		}
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
	}
}

// operator requires the operator token as a Bearer token.
func (s *Server) operator(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || s.OperatorToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.OperatorToken)) != 1 {
			writeError(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "send the operator token as Authorization: Bearer <token>"))
			return
		}
		h(w, r)
	}
}
