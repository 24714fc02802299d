// Package api serves the merchant API (/v1, authenticated by secret keys)
// and the operator API (/operator/v1, on its own listener, authenticated by
// the operator token). Handlers validate and authenticate; creating a payout
// inserts its PENDING row (the idempotency record) and publishes the request
// to Kafka, where the stages take over. api/openapi.yaml is the contract; a
// test keeps it and the routes served in step.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

// Body size limits per endpoint.
const (
	maxCreateBody   = 16 << 10
	maxSettingsBody = 16 << 10 // 100 whitelist entries and a 2 KiB URL fit in 7 KiB
	maxOperatorBody = 16 << 10
	maxEmptyBody    = 1 << 10 // endpoints that take no body accept {} or nothing
)

// DefaultKeyGracePeriod is how long a rotated-away secret key keeps working.
const DefaultKeyGracePeriod = 24 * time.Hour

// DefaultLimits are the request rates of an environment the operator has
// not configured (API.md); the burst is twice the rate.
var DefaultLimits = merchant.Limits{CreatePerSecond: 50, ReadPerSecond: 100}

var requests = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "disburse_http_request_seconds",
	Help:    "HTTP requests by API, route and status code.",
	Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
}, []string{"api", "route", "code"})

// Server holds what the handlers need.
type Server struct {
	Payouts   *payout.Store
	Merchants *merchant.Store
	Ledger    *ledger.Store
	Callbacks *callbacks.Store
	Kafka     *kgo.Client
	Topics    events.Topics
	Log       *slog.Logger
	// Bank answers account inquiries (POST /v1/account-inquiry and the
	// account_holder_name check of a new payout); nil answers 503.
	Bank connectors.Connector
	// Banks, when set, replaces Bank with a gateway per environment
	// ("sandbox", "production"), each with its own inquiry cache, so
	// sandbox never reaches a real bank and production never the
	// simulator; an environment without one answers 503.
	Banks map[string]connectors.Connector
	// Profiles are the banks' profiles, for the windows GET /v1/banks
	// shows (nil: connectors.DefaultProfiles()).
	Profiles connectors.Profiles
	// NameMatchThreshold is the connectors.NameScore a given holder name
	// needs (0: connectors.DefaultNameThreshold).
	NameMatchThreshold float64
	// CallbackPolicy decides which callback URLs may be set.
	CallbackPolicy callbacks.Policy
	// Reports serves /v1/reports/*; nil answers 503.
	Reports Reports
	// OperatorToken authenticates the operator API; empty refuses every call.
	OperatorToken string
	// Now is the clock (tests inject one).
	Now func() time.Time
	// KeyGracePeriod is how long a rotated-away key keeps working;
	// zero means DefaultKeyGracePeriod.
	KeyGracePeriod time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client;
	// from any other peer the socket's address is the client.
	TrustedProxies []netip.Prefix
	// Limits are the request rates of environments the operator has not
	// configured; zero fields take DefaultLimits.
	Limits merchant.Limits
	// RateLimiter takes each call's token; nil uses Merchants.Take (one
	// shared bucket row per merchant in Postgres). cmd/disburse serve uses
	// a merchant.ShareLimiter: buckets in memory holding this instance's
	// share of each merchant's rate.
	RateLimiter RateLimiter
	// Dashboard answers the operator's calls about the merchant
	// dashboard's users (activation requests, password reset links); nil
	// answers 503.
	Dashboard Dashboard
	// GroupCommit configures how concurrent creates share one transaction
	// and one produce (zero fields: the defaults).
	GroupCommit GroupCommit

	keyUse keyUse // when each key's use was last recorded (keys_scoped.go)

	// AuthCacheTTL is how long this instance reuses a key's successful
	// authentication (0: every call looks the key up; see authcache.go).
	AuthCacheTTL time.Duration
	authCache    authCache

	committerOnce sync.Once
	committer     *committer
}

// RateLimiter takes one call from a merchant environment's budget of rate
// calls per second (burst at most); when there is none it says how long
// until there is.
type RateLimiter interface {
	Take(ctx context.Context, merchantID, environment, budget string, rate, burst int) (bool, time.Duration, error)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Route is one served method and path, as openapi.yaml names it.
type Route struct {
	Method, Pattern string
	handler         http.HandlerFunc
}

// MerchantRoutes lists the merchant API. Each route names the rate-limit
// budget it spends: create for calls that create money movement, read for
// every other call.
func (s *Server) MerchantRoutes() []Route {
	const create, read = merchant.BudgetCreate, merchant.BudgetRead
	return []Route{
		{"POST", "/v1/disbursements", s.authed(create, s.createDisbursement)},
		{"GET", "/v1/disbursements", s.authed(read, s.listDisbursements)},
		{"GET", "/v1/disbursements/{id}", s.authed(read, s.getDisbursement)},
		{"POST", "/v1/disbursements/{id}/cancel", s.authed(create, s.cancelDisbursement)},
		{"POST", "/v1/disbursements/{id}/approve", s.authed(create, s.approvePayout)},
		{"POST", "/v1/disbursements/{id}/reject", s.authed(create, s.rejectPayout)},
		{"POST", "/v1/batches/{id}/approve", s.authed(create, s.approveBatch)},
		{"POST", "/v1/batches/{id}/reject", s.authed(create, s.rejectBatch)},
		{"GET", "/v1/approvals", s.authed(read, s.listApprovals)},
		{"GET", "/v1/approvals/policy", s.authed(read, s.getApprovalPolicy)},
		{"PUT", "/v1/approvals/policy", s.authed(read, s.setApprovalPolicy)},
		{"POST", "/v1/batches", s.authed(create, s.createBatch)},
		{"POST", "/v1/batches/quote", s.authed(create, s.quoteBatch)},
		{"GET", "/v1/batches", s.authed(read, s.listBatches)},
		{"GET", "/v1/batches/{id}", s.authed(read, s.getBatch)},
		{"GET", "/v1/batches/{id}/items", s.authed(read, s.listBatchItems)},
		{"POST", "/v1/batches/{id}/cancel", s.authed(create, s.cancelBatch)},
		{"GET", "/v1/balance", s.authed(read, s.getBalance)},
		{"GET", "/v1/balance/transactions", s.authed(read, s.getBalanceTransactions)},
		{"GET", "/v1/balance/transactions.csv", s.authed(read, s.getBalanceTransactionsCSV)},
		{"GET", "/v1/banks", s.authed(read, s.listBanks)},
		{"POST", "/v1/account-inquiry", s.authed(read, s.accountInquiry)},
		{"POST", "/v1/account-inquiries", s.authed(create, s.createInquiries)},
		{"GET", "/v1/account-inquiries/{id}", s.authed(read, s.getInquiries)},
		{"GET", "/v1/settings", s.authed(read, s.getSettings)},
		{"PATCH", "/v1/settings", s.authed(read, s.patchSettings)},
		{"POST", "/v1/settings/secret-key/rotate", s.authed(read, s.rotateKey)},
		{"GET", "/v1/events", s.authed(read, s.listEvents)},
		{"GET", "/v1/callbacks", s.authed(read, s.listCallbacks)},
		{"GET", "/v1/callbacks/{id}", s.authed(read, s.getCallback)},
		{"POST", "/v1/callbacks/{id}/redeliver", s.authed(create, s.redeliverCallback)},
		{"POST", "/v1/settings/callback-secret/rotate", s.authed(read, s.rotateCallbackSecret)},
		{"GET", "/v1/reports/summary", s.authed(read, s.getReportSummary)},
		{"GET", "/v1/reports/disbursements.csv", s.authed(read, s.getReportCSV)},
		{"GET", "/v1/controls", s.authed(read, s.getControls)},
		{"PUT", "/v1/controls/velocity", s.authed(read, s.setVelocity)},
		{"POST", "/v1/controls/pause", s.authed(read, s.pausePayouts)},
		{"POST", "/v1/controls/resume", s.authed(read, s.resumePayouts)},
		{"GET", "/v1/keys", s.authed(read, s.listMerchantKeys)},
		{"POST", "/v1/keys", s.authed(read, s.createKey)},
		{"POST", "/v1/keys/{id}/revoke", s.authed(read, s.revokeMerchantKey)},
		{"GET", "/v1/openapi.yaml", s.getOpenAPI}, // public: the contract is no secret
	}
}

// OperatorRoutes lists the operator API.
func (s *Server) OperatorRoutes() []Route {
	return []Route{
		{"POST", "/operator/v1/merchants", s.operator(s.createMerchant)},
		{"POST", "/operator/v1/merchants/{id}/sandbox/activate", s.operator(s.activateSandbox)},
		{"POST", "/operator/v1/merchants/{id}/production/activate", s.operator(s.activateProduction)},
		{"POST", "/operator/v1/merchants/{id}/topups", s.operator(s.topUp)},
		{"PUT", "/operator/v1/merchants/{id}/environments/{env}/settings", s.operator(s.setSettings)},
		{"PUT", "/operator/v1/merchants/{id}/environments/{env}/billing", s.operator(s.setBilling)},
		{"GET", "/operator/v1/merchants/{id}/environments/{env}/invoices", s.operator(s.listInvoices)},
		{"POST", "/operator/v1/merchants/{id}/environments/{env}/invoices/close", s.operator(s.closeInvoice)},
		{"POST", "/operator/v1/merchants/{id}/environments/{env}/invoices/{invoice}/pay", s.operator(s.payInvoice)},
		{"POST", "/operator/v1/merchants/{id}/suspend", s.operator(s.suspend)},
		{"POST", "/operator/v1/merchants/{id}/resume", s.operator(s.resume)},
		{"GET", "/operator/v1/payouts/unresolved", s.operator(s.listUnresolved)},
		{"GET", "/operator/v1/merchants/{id}/keys", s.operator(s.listKeys)},
		{"POST", "/operator/v1/merchants/{id}/environments/{env}/keys", s.operator(s.issueKey)},
		{"POST", "/operator/v1/merchants/{id}/keys/{key_id}/revoke", s.operator(s.revokeKey)},
		{"PUT", "/operator/v1/merchants/{id}/environments/{env}/rate-limits", s.operator(s.setRateLimits)},
		{"GET", "/operator/v1/merchants/{id}/settings-audit", s.operator(s.settingsAudit)},
		{"GET", "/operator/v1/activation-requests", s.operator(s.listActivationRequests)},
		{"POST", "/operator/v1/users/password-reset", s.operator(s.passwordReset)},
		{"PUT", "/operator/v1/merchants/{id}/environments/{env}/velocity-ceiling", s.operator(s.setVelocityCeiling)},
		{"POST", "/operator/v1/merchants/{id}/environments/{env}/pause", s.operator(s.operatorPause)},
		{"POST", "/operator/v1/merchants/{id}/environments/{env}/resume", s.operator(s.operatorResume)},
	}
}

// Handler is the merchant API.
func (s *Server) Handler() http.Handler { return s.mux("merchant", s.MerchantRoutes()) }

// OperatorHandler is the operator API.
func (s *Server) OperatorHandler() http.Handler { return s.mux("operator", s.OperatorRoutes()) }

func (s *Server) mux(api string, routes []Route) http.Handler {
	mux := http.NewServeMux()
	// paths knows every pattern without its method, to tell a wrong method
	// (405) from a wrong path (404) in the documented error format.
	paths := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+rt.Pattern, s.instrument(api, rt.Pattern, rt.handler))
		if allowed[rt.Pattern] == nil {
			paths.Handle(rt.Pattern, http.NotFoundHandler())
		}
		allowed[rt.Pattern] = append(allowed[rt.Pattern], rt.Method)
	}
	mux.Handle("/", s.instrument(api, "unmatched", func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			w.Header().Set("Allow", strings.Join(allowed[pattern], ", "))
			writeError(w, newProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "this endpoint takes "+strings.Join(allowed[pattern], ", ")))
			return
		}
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such endpoint; see api/openapi.yaml"))
	}))
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// instrument adds the request id, recovers panics without leaking them, and
// measures the request.
func (s *Server) instrument(api, route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*errorConn); ok {
			c.handlerStarted()
			defer c.handlerDone()
		}
		start := time.Now()
		id := requestID(r)
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { // a handler cutting a streamed answer short
					requests.WithLabelValues(api, route, "aborted").Observe(time.Since(start).Seconds())
					panic(v)
				}
				s.Log.Error("handler panic", "request_id", id, "route", route, "panic", fmt.Sprint(v))
				writeError(rec, newProblem(http.StatusInternalServerError, CodeInternal, "internal error; quote request id "+id))
			}
			requests.WithLabelValues(api, route, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
		}()
		h(rec, r.WithContext(withRequestID(r.Context(), id)))
		if rec.code < 400 && clearsAuth(api, r.Method, route) {
			s.authCache.clear()
		}
	})
}

type requestIDKey struct{}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

// internalError logs err and answers 500 without details.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	s.Log.Error("request failed", "request_id", id, "path", r.URL.Path, "err", err)
	writeError(w, newProblem(http.StatusInternalServerError, CodeInternal, "internal error; quote request id "+id))
}
