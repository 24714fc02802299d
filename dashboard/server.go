package dashboard

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the Content-Security-Policy of every answer: scripts, styles,
// fonts and images only from the dashboard itself (nothing inline, no
// CDN), forms only to itself, never framed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Cookie names.
const (
	sessionCookie = "disburse_session"
	preCSRFCookie = "disburse_csrf" // the double-submit token of the sign-in and sign-up forms
	langCookie    = "lang"
)

// Server is the merchant dashboard: server-rendered pages over the same
// stores and validation as the merchant API (API), with users and
// sessions of its own (Store).
type Server struct {
	API   *api.Server
	Store *Store
	// Callbacks sends the settings page's test callback (its Store and
	// Policy are the callback stage's).
	Callbacks *callbacks.Worker
	Log       *slog.Logger
	// Secure marks cookies Secure (every deployment but `disburse dev`
	// on plain http to loopback).
	Secure bool
	// Now is the clock (tests inject one).
	Now func() time.Time
	// LoginLimit is how many sign-in attempts one client address may make
	// per minute (0: 10).
	LoginLimit int

	pages   map[string]*template.Template
	limiter *attemptLimiter
}

// New builds the dashboard on the merchant API's server and the database.
// baseURL is the dashboard's public URL (for password reset links).
func New(apiServer *api.Server, db *pgxpool.Pool, baseURL string, secure bool) (*Server, error) {
	s := &Server{
		API:       apiServer,
		Store:     NewStore(db, baseURL),
		Callbacks: &callbacks.Worker{Store: apiServer.Callbacks, Policy: apiServer.CallbackPolicy, Log: apiServer.Log},
		Log:       apiServer.Log,
		Secure:    secure,
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if err := s.parse(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

var funcs = template.FuncMap{
	"money": formatMoney,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"whenp": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"json": auditValue,
	// dict passes several values to a shared template: dict "K" v "L" w.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, errors.New("dict takes key and value pairs")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, errors.New("dict keys are strings")
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
	"str": func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	},
}

// formatMoney writes minor units of IDR with thousands separators.
func formatMoney(v int64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	digits := strconv.FormatInt(v, 10)
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func (s *Server) parse() error {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	s.pages = map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

// Handler serves the dashboard.
func (s *Server) Handler() http.Handler {
	if s.limiter == nil {
		n := s.LoginLimit
		if n <= 0 {
			n = 10
		}
		s.limiter = newAttemptLimiter(n, time.Minute)
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /signup", s.signupForm)
	mux.HandleFunc("POST /signup", s.signup)
	mux.HandleFunc("GET /reset", s.resetForm)
	mux.HandleFunc("POST /reset", s.reset)
	mux.HandleFunc("GET /lang/{lang}", s.setLang)
	mux.HandleFunc("POST /logout", s.authed(RoleViewer, s.logout))
	mux.HandleFunc("POST /environment", s.authed(RoleViewer, s.switchEnvironment))
	mux.HandleFunc("GET /disbursement", s.authed(RoleViewer, s.disbursement))
	mux.HandleFunc("POST /disbursement/activate", s.authed(RoleOwner, s.activate))
	mux.HandleFunc("POST /disbursement/request-production", s.authed(RoleOwner, s.requestProduction))
	mux.HandleFunc("GET /settings", s.authed(RoleViewer, s.settings))
	mux.HandleFunc("POST /settings/rotate-key", s.authed(RoleOwner, s.rotateKey))
	mux.HandleFunc("POST /settings/ip-whitelist", s.authed(RoleOwner, s.saveWhitelist))
	mux.HandleFunc("POST /settings/callback", s.authed(RoleOwner, s.saveCallback))
	mux.HandleFunc("POST /settings/callback-test", s.authed(RoleFinance, s.testCallback))
	mux.HandleFunc("GET /payouts", s.authed(RoleViewer, s.payouts))
	mux.HandleFunc("GET /payouts/{id}", s.authed(RoleViewer, s.payoutPage))
	mux.HandleFunc("POST /payouts/{id}/cancel", s.authed(RoleFinance, s.cancelHeld))
	mux.HandleFunc("POST /callbacks/{id}/redeliver", s.authed(RoleFinance, s.redeliver))
	mux.HandleFunc("GET /batches", s.authed(RoleViewer, s.batches))
	mux.HandleFunc("POST /batches/upload", s.authed(RoleFinance, s.upload))
	mux.HandleFunc("POST /batches/send", s.authed(RoleFinance, s.send))
	mux.HandleFunc("GET /batches/{id}", s.authed(RoleViewer, s.batchPage))
	mux.HandleFunc("GET /batches/{id}/progress", s.authed(RoleViewer, s.batchProgress))
	mux.HandleFunc("GET /batches/{id}/results.csv", s.authed(RoleViewer, s.batchResults))
	mux.HandleFunc("GET /reports", s.authed(RoleViewer, s.reports))
	mux.HandleFunc("GET /reports/disbursements.csv", s.authed(RoleViewer, s.reportCSV))
	mux.HandleFunc("GET /approvals", s.authed(RoleViewer, s.approvals))
	mux.HandleFunc("POST /approvals/policy", s.authed(RoleOwner, s.savePolicy))
	mux.HandleFunc("POST /approvals/{kind}/{id}", s.authed(RoleFinance, s.decideHold))
	mux.HandleFunc("POST /batches/{id}/cancel", s.authed(RoleFinance, s.cancelBatch))
	mux.HandleFunc("GET /controls", s.authed(RoleViewer, s.controlsPage))
	mux.HandleFunc("POST /controls/pause", s.authed(RoleFinance, s.pause))
	mux.HandleFunc("POST /controls/resume", s.authed(RoleFinance, s.resume))
	mux.HandleFunc("POST /controls/velocity", s.authed(RoleOwner, s.saveVelocity))
	mux.HandleFunc("GET /keys", s.authed(RoleViewer, s.keys))
	mux.HandleFunc("POST /keys", s.authed(RoleOwner, s.createKey))
	mux.HandleFunc("POST /keys/{id}/revoke", s.authed(RoleOwner, s.revokeKey))
	mux.HandleFunc("GET /inquiries", s.authed(RoleViewer, s.inquiries))
	mux.HandleFunc("POST /inquiries", s.authed(RoleFinance, s.askInquiries))
	mux.HandleFunc("GET /inquiries/{id}", s.authed(RoleViewer, s.inquiryPage))
	mux.HandleFunc("GET /users", s.authed(RoleOwner, s.users))
	mux.HandleFunc("POST /users", s.authed(RoleOwner, s.addUser))
	return headers(mux)
}

// headers sets the security headers of every answer.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

// request is what a signed-in handler gets: the session, its token, the
// language and the principal the merchant API's functions take.
type request struct {
	*Session
	token string
	lang  string
}

// principal is the session's merchant environment as the API's stores
// take it; KeyID names the user (the audit log's actor).
func (rq *request) principal() merchant.Principal {
	return merchant.Principal{MerchantID: rq.MerchantID, Environment: rq.Environment, KeyID: rq.Actor()}
}

// authed loads the session (else sends to /login), checks the CSRF token
// of every POST, and requires role.
func (s *Server) authed(role string, h func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil || c.Value == "" || len(c.Value) > 128 {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		ss, err := s.Store.Session(r.Context(), c.Value, s.now())
		if errors.Is(err, ErrNoSession) {
			s.clearCookie(w, sessionCookie)
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			s.internal(w, r, langOf(r), err)
			return
		}
		rq := &request{Session: &ss, token: c.Value, lang: langOf(r)}
		if r.Method == http.MethodPost {
			if r.Header.Get("Content-Type") != "" && strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
				r.Body = http.MaxBytesReader(w, r.Body, maxUploadBody)
				if err := r.ParseMultipartForm(8 << 20); err != nil {
					s.fail(w, r, rq, http.StatusBadRequest, T(rq.lang, "batch.unreadable")+" "+err.Error())
					return
				}
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ss.CSRF)) != 1 {
				s.fail(w, r, rq, http.StatusForbidden, T(rq.lang, "err.csrf"))
				return
			}
		}
		if !ss.Can(role) {
			s.fail(w, r, rq, http.StatusForbidden, T(rq.lang, "err.forbidden"))
			return
		}
		h(w, r, rq)
	}
}

// page is the data every template gets.
type page struct {
	Lang, Title, Nav, CSRF string
	Session                *Session
	Flash, Error           string
	Data                   any
	// Pause is the environment's pause, for the banner of every signed-in page.
	Pause *pauseState
}

// T translates key into the page's language.
func (p page) T(key string) string { return T(p.Lang, key) }

// Other is the language the switch offers.
func (p page) Other() string {
	if p.Lang == LangEN {
		return LangID
	}
	return LangEN
}

// Env is the session's environment.
func (p page) Env() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.Environment
}

// render writes the page template name with data.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		s.internal(w, r, p.Lang, fmt.Errorf("no template %q", name))
		return
	}
	var b strings.Builder
	if err := t.Execute(&b, p); err != nil {
		s.internal(w, r, p.Lang, fmt.Errorf("render %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

// view renders a signed-in page.
func (s *Server) view(w http.ResponseWriter, r *http.Request, rq *request, name, nav, titleKey string, data any, flash, errText string) {
	st, err := s.pauseOf(r.Context(), rq)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.render(w, r, http.StatusOK, name, page{Lang: rq.lang, Title: T(rq.lang, titleKey), Nav: nav, CSRF: rq.CSRF,
		Session: rq.Session, Flash: flash, Error: errText, Data: data, Pause: &st})
}

// fail renders an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, rq *request, code int, msg string) {
	s.render(w, r, code, "error", page{Lang: rq.lang, Title: msg, CSRF: rq.CSRF, Session: rq.Session, Error: msg})
}

// internal logs err and answers 500 with a reference to quote.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, lang string, err error) {
	ref := randomToken(6)
	s.Log.Error("dashboard request failed", "ref", ref, "path", r.URL.Path, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(T(lang, "err.internal") + " " + ref + "\n"))
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
}

// environmentActive reports whether the session's environment is on.
func (s *Server) environmentActive(ctx context.Context, rq *request) (bool, error) {
	_, err := s.API.Merchants.Access(ctx, rq.MerchantID, rq.Environment, s.now())
	if errors.Is(err, merchant.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// validEnvironment reports whether env names an environment.
func validEnvironment(env string) bool { return env == payout.Sandbox || env == payout.Production }

// attemptLimiter allows n attempts per window per key (a client address),
// in memory: a sliding log, pruned on each call. Per instance: behind a
// load balancer each instance allows n, and the account lockout (in
// Postgres) is the shared bound.
type attemptLimiter struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	seen   map[string][]time.Time
}

func newAttemptLimiter(n int, window time.Duration) *attemptLimiter {
	return &attemptLimiter{n: n, window: window, seen: map[string][]time.Time{}}
}

// allow records an attempt by key at now and reports whether it is within the limit.
func (l *attemptLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) > 100_000 { // a flood of addresses: forget them all rather than grow
		l.seen = map[string][]time.Time{}
	}
	log := l.seen[key]
	kept := log[:0]
	for _, t := range log {
		if now.Sub(t) < l.window {
			kept = append(kept, t)
		}
	}
	if len(kept) >= l.n {
		l.seen[key] = kept
		return false
	}
	l.seen[key] = append(kept, now)
	return true
}
