package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/merchant"
)

var (
	ipDenied = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_api_ip_denied_total",
		Help: "Merchant API calls with a valid key refused because the caller's address is not in the environment's IP whitelist.",
	}, []string{"environment"})
	rateLimited = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_api_rate_limited_total",
		Help: "Merchant API calls refused with 429 by the per-merchant rate limits, by budget (create, read).",
	}, []string{"environment", "budget"})
)

type principalKey struct{}

// authed guards a merchant endpoint, in this order: HTTP Basic auth with a
// secret key as the user name (401), the environment's IP whitelist (403,
// before the rate limit so that calls from unlisted addresses cannot spend
// the merchant's budget), then the rate limit of budget (429).
func (s *Server) authed(budget string, h func(http.ResponseWriter, *http.Request, merchant.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, _, ok := r.BasicAuth()
		if !ok || key == "" || len(key) > 256 {
			w.Header().Set("WWW-Authenticate", `Basic realm="disburse"`)
			writeError(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "authenticate with HTTP Basic, your secret key as the user name and an empty password"))
			return
		}
		now := s.now()
		p, cached := s.authCache.get(key, now, s.AuthCacheTTL)
		var err error
		if !cached {
			p, err = s.Merchants.Authenticate(r.Context(), key, now)
			if err == nil {
				s.authCache.put(key, p, now, s.AuthCacheTTL)
			}
		}
		if errors.Is(err, merchant.ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Basic realm="disburse"`)
			writeError(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "the secret key is unknown, expired or revoked"))
			return
		}
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if addr := s.clientAddr(r); !merchant.Allows(p.IPWhitelist, addr) {
			ipDenied.WithLabelValues(p.Environment).Inc()
			s.Log.Warn("call refused by IP whitelist", "merchant_id", p.MerchantID, "environment", p.Environment,
				"key_id", p.KeyID, "client", addrString(addr))
			writeError(w, newProblem(http.StatusForbidden, CodeForbidden,
				"calls from "+addrString(addr)+" are not in this environment's IP whitelist"))
			return
		}
		// A restricted key's scope is checked before the rate limit, so
		// calls it may not make cannot spend the merchant's budget.
		if prob := scopeProblem(r, p); prob != nil {
			writeError(w, prob)
			return
		}
		limits := p.Limits.Or(s.defaultLimits())
		rate := limits.ReadPerSecond
		if budget == merchant.BudgetCreate {
			rate = limits.CreatePerSecond
		}
		var limiter RateLimiter = s.Merchants
		if s.RateLimiter != nil {
			limiter = s.RateLimiter
		}
		allowed, wait, err := limiter.Take(r.Context(), p.MerchantID, p.Environment, budget, rate, 2*rate)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if !allowed {
			rateLimited.WithLabelValues(p.Environment, budget).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
			writeError(w, newProblem(http.StatusTooManyRequests, CodeRateLimited,
				"over the "+budget+" rate limit of "+strconv.Itoa(rate)+" calls per second; retry after the Retry-After seconds"))
			return
		}
		if prob := checkRequestText(r); prob != nil {
			writeError(w, prob)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
		// A key's use is recorded only for calls that succeeded: a
		// refused call changes nothing.
		if rec, ok := w.(*statusRecorder); ok && rec.code < 400 {
			s.touchKey(r.Context(), p)
		}
	}
}

func (s *Server) defaultLimits() merchant.Limits { return s.Limits.Or(DefaultLimits) }

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	secs := int((wait + time.Second - 1) / time.Second)
	return max(secs, 1)
}

// operator requires the operator token as a Bearer token.
func (s *Server) operator(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || s.OperatorToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.OperatorToken)) != 1 {
			writeError(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "send the operator token as Authorization: Bearer <token>"))
			return
		}
		if prob := checkRequestText(r); prob != nil {
			writeError(w, prob)
			return
		}
		h(w, r)
	}
}
