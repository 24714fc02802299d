package dashboard

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/disburse/disburse/payout"
)

// home sends a signed-in user to the Disbursement menu, anyone else to /login.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		http.Redirect(w, r, "/disbursement", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// preCSRF returns the double-submit token of the sign-in forms, setting
// its cookie when the browser has none.
func (s *Server) preCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCSRFCookie); err == nil && len(c.Value) == 64 {
		return c.Value
	}
	token := randomToken(32)
	http.SetCookie(w, &http.Cookie{Name: preCSRFCookie, Value: token, Path: "/", HttpOnly: true, Secure: s.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int((12 * time.Hour).Seconds())})
	return token
}

// checkPreCSRF compares the form's token with the cookie's.
func checkPreCSRF(r *http.Request) bool {
	c, err := r.Cookie(preCSRFCookie)
	return err == nil && len(c.Value) == 64 && subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

// admit checks a sign-in or sign-up form's CSRF token and the client
// address's attempt budget; when it refuses, the form is shown again.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, name, titleKey string, form authForm) bool {
	lang := langOf(r)
	if !checkPreCSRF(r) {
		s.public(w, r, http.StatusForbidden, name, titleKey, form, "", T(lang, "err.csrf"))
		return false
	}
	if !s.limiter.allow(s.API.ClientAddr(r).String(), s.now()) {
		w.Header().Set("Retry-After", "60")
		s.public(w, r, http.StatusTooManyRequests, name, titleKey, form, "", T(lang, "login.throttled"))
		return false
	}
	return true
}

type authForm struct {
	Email, Business string
	Token           string // reset token
}

func (s *Server) public(w http.ResponseWriter, r *http.Request, code int, name, titleKey string, form authForm, flash, errText string) {
	lang := langOf(r)
	s.render(w, r, code, name, page{Lang: lang, Title: T(lang, titleKey), CSRF: s.preCSRF(w, r), Data: form, Flash: flash, Error: errText})
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	flash := ""
	if r.URL.Query().Get("reset") == "1" {
		flash = T(langOf(r), "reset.done")
	}
	s.public(w, r, http.StatusOK, "login", "login.title", authForm{}, flash, "")
}

// login signs a user in: rate limited per client address, locked after
// repeated wrong passwords, a new session (and CSRF token) each time.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	lang := langOf(r)
	email := strings.TrimSpace(r.PostFormValue("email"))
	form := authForm{Email: email}
	if !s.admit(w, r, "login", "login.title", form) {
		return
	}
	password := r.PostFormValue("password")
	if len(password) > MaxPassword || len(email) > 254 {
		s.public(w, r, http.StatusUnauthorized, "login", "login.title", form, "", T(lang, "login.bad"))
		return
	}
	u, err := s.Store.Authenticate(r.Context(), email, password, s.now())
	var locked *LockedError
	switch {
	case errors.As(err, &locked):
		s.Log.Warn("dashboard sign-in refused: account locked", "email", NormalizeEmail(email), "client", s.API.ClientAddr(r).String())
		s.public(w, r, http.StatusForbidden, "login", "login.title", form, "", T(lang, "login.locked")+" "+locked.Until.UTC().Format("15:04 UTC")+".")
		return
	case errors.Is(err, ErrBadCredentials):
		s.public(w, r, http.StatusUnauthorized, "login", "login.title", form, "", T(lang, "login.bad"))
		return
	case err != nil:
		s.internal(w, r, lang, err)
		return
	}
	s.startSession(w, r, u)
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u User) {
	token, err := s.Store.CreateSession(r.Context(), u.ID, s.now())
	if err != nil {
		s.internal(w, r, langOf(r), err)
		return
	}
	s.Log.Info("dashboard sign-in", "merchant_id", u.MerchantID, "user_id", u.ID, "role", u.Role)
	s.setCookie(w, sessionCookie, token, sessionTTL)
	http.Redirect(w, r, "/disbursement", http.StatusSeeOther)
}

func (s *Server) signupForm(w http.ResponseWriter, r *http.Request) {
	s.public(w, r, http.StatusOK, "signup", "signup.title", authForm{}, "", "")
}

// signup creates a merchant for the business with its owner, and signs in.
func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	lang := langOf(r)
	business := strings.TrimSpace(r.PostFormValue("business"))
	email := strings.TrimSpace(r.PostFormValue("email"))
	password := r.PostFormValue("password")
	form := authForm{Email: email, Business: business}
	if !s.admit(w, r, "signup", "signup.title", form) {
		return
	}
	var msgs []string
	if business == "" || len(business) > 200 || !payout.CleanText(business) {
		msgs = append(msgs, T(lang, "err.business"))
	}
	if !ValidEmail(email) {
		msgs = append(msgs, T(lang, "err.email"))
	}
	if len(password) < MinPassword || len(password) > MaxPassword {
		msgs = append(msgs, T(lang, "err.password"))
	}
	if len(msgs) > 0 {
		s.public(w, r, http.StatusUnprocessableEntity, "signup", "signup.title", form, "", strings.Join(msgs, " "))
		return
	}
	u, err := s.Store.SignUp(r.Context(), business, email, password)
	if errors.Is(err, ErrEmailTaken) {
		s.public(w, r, http.StatusConflict, "signup", "signup.title", form, "", T(lang, "err.emailtaken"))
		return
	}
	if err != nil {
		s.internal(w, r, lang, err)
		return
	}
	s.Log.Info("dashboard sign-up", "merchant_id", u.MerchantID, "user_id", u.ID)
	s.startSession(w, r, u)
}

func (s *Server) resetForm(w http.ResponseWriter, r *http.Request) {
	s.public(w, r, http.StatusOK, "reset", "reset.title", authForm{Token: r.URL.Query().Get("token")}, "", "")
}

// reset sets a new password through an operator-issued link.
func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	lang := langOf(r)
	token, password := r.PostFormValue("token"), r.PostFormValue("password")
	form := authForm{Token: token}
	if !checkPreCSRF(r) {
		s.public(w, r, http.StatusForbidden, "reset", "reset.title", form, "", T(lang, "err.csrf"))
		return
	}
	if len(password) < MinPassword || len(password) > MaxPassword {
		s.public(w, r, http.StatusUnprocessableEntity, "reset", "reset.title", form, "", T(lang, "err.password"))
		return
	}
	err := s.Store.ResetPassword(r.Context(), token, password, s.now())
	if errors.Is(err, ErrBadResetToken) {
		s.public(w, r, http.StatusGone, "reset", "reset.title", form, "", T(lang, "reset.bad"))
		return
	}
	if err != nil {
		s.internal(w, r, lang, err)
		return
	}
	http.Redirect(w, r, "/login?reset=1", http.StatusSeeOther)
}

// setLang switches the language and goes back to next (a local path).
func (s *Server) setLang(w http.ResponseWriter, r *http.Request) {
	lang := r.PathValue("lang")
	if lang != LangID && lang != LangEN {
		http.NotFound(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", MaxAge: int((365 * 24 * time.Hour).Seconds()),
		Secure: s.Secure, SameSite: http.SameSiteLaxMode, HttpOnly: true})
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, rq *request) {
	if err := s.Store.DeleteSession(r.Context(), rq.token); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// switchEnvironment changes the environment every page shows.
func (s *Server) switchEnvironment(w http.ResponseWriter, r *http.Request, rq *request) {
	env := r.PostFormValue("environment")
	if !validEnvironment(env) {
		s.fail(w, r, rq, http.StatusBadRequest, T(rq.lang, "env.label"))
		return
	}
	if err := s.Store.SetEnvironment(r.Context(), rq.token, env); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	next := r.PostFormValue("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		next = "/disbursement"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}
