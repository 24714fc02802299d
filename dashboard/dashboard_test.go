package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

func TestPasswordHash(t *testing.T) {
	h1, err := hashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := hashPassword("correct horse battery")
	if h1 == h2 || !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hashes %q and %q: want argon2id PHC strings with their own salts", h1, h2)
	}
	for _, c := range []struct {
		password string
		want     bool
	}{{"correct horse battery", true}, {"correct horse batterY", false}, {"", false}} {
		if ok, err := checkPassword(h1, c.password); ok != c.want || err != nil {
			t.Errorf("check %q: %v, %v; want %v", c.password, ok, err, c.want)
		}
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=19456,t=2,p=0$AA$AA", "$argon2id$v=19$m=19456,t=2,p=1$!!$AA"} {
		if _, err := checkPassword(bad, "x"); !errors.Is(err, errBadHash) {
			t.Errorf("hash %q: err %v, want errBadHash", bad, err)
		}
	}
}

func TestAttemptLimiter(t *testing.T) {
	l := newAttemptLimiter(3, time.Minute)
	now := time.Now()
	for i := 0; i < 3; i++ {
		if !l.allow("a", now) {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if l.allow("a", now) {
		t.Fatal("fourth attempt in the window allowed")
	}
	if !l.allow("b", now) {
		t.Fatal("another address refused")
	}
	if !l.allow("a", now.Add(time.Minute)) {
		t.Fatal("attempt after the window refused")
	}
}

func TestMerchantIDFor(t *testing.T) {
	for name, prefix := range map[string]string{"Toko Uji Coba": "toko-uji-coba-", "  PT. Maju!! ": "pt-maju-", "日本": "merchant-"} {
		id := merchantIDFor(name)
		if !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+6 {
			t.Errorf("merchantIDFor(%q) = %q, want %s + 6 hex", name, id, prefix)
		}
	}
}

// testServer is the dashboard on a fresh database, with the merchant API's
// stores (no Kafka: these tests send no payouts).
func testServer(t *testing.T, now *time.Time) (*Server, *httptest.Server) {
	t.Helper()
	pool, _ := fixture.Postgres(t)
	as := &api.Server{Payouts: payout.NewStore(pool), Merchants: merchant.NewStore(pool), Ledger: ledger.NewStore(pool),
		Callbacks: callbacks.NewStore(pool), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CallbackPolicy: callbacks.Policy{AllowInsecureSandbox: true}}
	s, err := New(as, pool, "http://dash.test", false)
	if err != nil {
		t.Fatal(err)
	}
	s.LoginLimit = 8
	if now != nil {
		s.Now = func() time.Time { return *now }
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

// client is a browser-like HTTP client: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// get returns the status, the Location and the body.
func (c *client) get(path string) (int, string, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// csrf reads the form token of the page at path.
func (c *client) csrf(path string) string {
	c.t.Helper()
	_, _, body := c.get(path)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no csrf field on %s", path)
	}
	return m[1]
}

func (c *client) post(path string, form url.Values) (int, string, string) {
	c.t.Helper()
	resp, err := c.c.PostForm(c.base+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func (c *client) signIn(email, password string) int {
	c.t.Helper()
	code, _, _ := c.post("/login", url.Values{"csrf": {c.csrf("/login")}, "email": {email}, "password": {password}})
	return code
}

func TestSignUpSessionAndCSRF(t *testing.T) {
	_, hs := testServer(t, nil)
	c := newClient(t, hs.URL)

	// Without the form's token nothing happens.
	code, _, _ := c.post("/signup", url.Values{"business": {"Toko"}, "email": {"a@toko.example"}, "password": {"long enough pw"}})
	if code != http.StatusForbidden {
		t.Fatalf("sign-up without csrf: %d, want 403", code)
	}
	code, _, body := c.post("/signup", url.Values{"csrf": {c.csrf("/signup")}, "business": {""}, "email": {"nope"}, "password": {"short"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "alamat email yang benar") {
		t.Fatalf("invalid sign-up: %d", code)
	}
	resp, err := c.c.PostForm(hs.URL+"/signup", url.Values{"csrf": {c.csrf("/signup")}, "business": {"Toko"}, "email": {"A@Toko.example"}, "password": {"long enough pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/disbursement" {
		t.Fatalf("sign-up: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure in dev", session)
	}
	if h := resp.Header.Get("Content-Security-Policy"); h != CSP {
		t.Errorf("CSP header %q", h)
	}
	// The same email, in another case, is taken.
	c2 := newClient(t, hs.URL)
	if code, _, _ := c2.post("/signup", url.Values{"csrf": {c2.csrf("/signup")}, "business": {"Other"}, "email": {"a@toko.example"}, "password": {"long enough pw"}}); code != http.StatusConflict {
		t.Errorf("second sign-up with the same email: %d, want 409", code)
	}

	// A signed-in POST needs the session's token, not the sign-in form's.
	if code, _, _ := c.post("/disbursement/activate", url.Values{"csrf": {"0123"}}); code != http.StatusForbidden {
		t.Fatalf("activate with a wrong csrf: %d, want 403", code)
	}
	code, _, body = c.post("/disbursement/activate", url.Values{"csrf": {c.csrf("/disbursement")}})
	if code != http.StatusOK || !strings.Contains(body, "sk_sandbox_") {
		t.Fatalf("activate: %d", code)
	}
	// Sign out ends the session server-side.
	if code, loc, _ := c.post("/logout", url.Values{"csrf": {c.csrf("/disbursement")}}); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("logout: %d %q", code, loc)
	}
	if _, loc, _ := c.get("/disbursement"); loc != "/login" {
		t.Fatalf("after logout /disbursement goes to %q, want /login", loc)
	}
}

func TestRoles(t *testing.T) {
	_, hs := testServer(t, nil)
	owner := newClient(t, hs.URL)
	owner.post("/signup", url.Values{"csrf": {owner.csrf("/signup")}, "business": {"Toko"}, "email": {"o@toko.example"}, "password": {"long enough pw"}})
	for _, u := range []struct{ email, role string }{{"f@toko.example", RoleFinance}, {"v@toko.example", RoleViewer}} {
		code, _, body := owner.post("/users", url.Values{"csrf": {owner.csrf("/users")}, "email": {u.email}, "role": {u.role}, "password": {"long enough pw"}})
		if code != http.StatusOK || !strings.Contains(body, u.email) {
			t.Fatalf("add %s: %d", u.role, code)
		}
	}
	owner.post("/disbursement/activate", url.Values{"csrf": {owner.csrf("/disbursement")}})

	viewer := newClient(t, hs.URL)
	if code := viewer.signIn("v@toko.example", "long enough pw"); code != http.StatusSeeOther {
		t.Fatalf("viewer sign-in: %d", code)
	}
	finance := newClient(t, hs.URL)
	finance.signIn("f@toko.example", "long enough pw")
	for _, c := range []struct {
		who  *client
		path string
		want int
	}{
		{viewer, "/settings/rotate-key", http.StatusForbidden},
		{viewer, "/settings/callback-test", http.StatusForbidden},
		{viewer, "/batches/send", http.StatusForbidden},
		{viewer, "/users", http.StatusForbidden},
		{finance, "/settings/rotate-key", http.StatusForbidden},
		{finance, "/settings/ip-whitelist", http.StatusForbidden},
		{finance, "/disbursement/request-production", http.StatusForbidden},
		{finance, "/batches/send", http.StatusNotFound}, // allowed; no such upload
		{viewer, "/controls/pause", http.StatusForbidden},
		{viewer, "/controls/resume", http.StatusForbidden},
		{viewer, "/approvals/batch/b_1", http.StatusForbidden},
		{viewer, "/inquiries", http.StatusForbidden},
		{viewer, "/batches/b_1/cancel", http.StatusForbidden},
		{finance, "/approvals/policy", http.StatusForbidden},
		{finance, "/controls/velocity", http.StatusForbidden},
		{finance, "/keys", http.StatusForbidden},
		{finance, "/keys/k_1/revoke", http.StatusForbidden},
		{finance, "/approvals/batch/b_1", http.StatusBadRequest}, // allowed; no decision given
		{finance, "/batches/b_1/cancel", http.StatusNotFound},    // allowed; no such batch
		{owner, "/settings/rotate-key", http.StatusOK},
	} {
		code, _, _ := c.who.post(c.path, url.Values{"csrf": {c.who.csrf("/settings")}})
		if code != c.want {
			t.Errorf("POST %s: %d, want %d", c.path, code, c.want)
		}
	}
	if code, _, _ := viewer.get("/settings"); code != http.StatusOK {
		t.Errorf("viewer GET /settings: %d", code)
	}
	if code, _, _ := viewer.get("/users"); code != http.StatusForbidden {
		t.Errorf("viewer GET /users: %d", code)
	}
}

func TestLockoutRateLimitAndReset(t *testing.T) {
	now := time.Now()
	s, hs := testServer(t, &now)
	ctx := context.Background()
	if _, err := s.Store.SignUp(ctx, "Toko", "o@toko.example", "long enough pw"); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, hs.URL)
	for i := 1; i < maxFailedLogins; i++ {
		if code := c.signIn("o@toko.example", "wrong password!"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, code)
		}
	}
	if code := c.signIn("o@toko.example", "wrong password!"); code != http.StatusForbidden {
		t.Fatalf("wrong password %d: %d, want 403 (locked)", maxFailedLogins, code)
	}
	if code := c.signIn("o@toko.example", "long enough pw"); code != http.StatusForbidden {
		t.Fatalf("right password while locked: %d, want 403", code)
	}
	// Unknown emails answer as a wrong password does.
	if code := c.signIn("nobody@toko.example", "long enough pw"); code != http.StatusUnauthorized {
		t.Fatalf("unknown email: %d", code)
	}
	// The address's budget (8 a minute) is spent: 429 whatever the password.
	for i := 0; i < 2; i++ {
		c.signIn("o@toko.example", "x")
	}
	if code := c.signIn("o@toko.example", "long enough pw"); code != http.StatusTooManyRequests {
		t.Fatalf("ninth attempt in a minute: %d, want 429", code)
	}

	// The operator's reset link lifts the lockout, once.
	_, link, expires, err := s.Store.PasswordResetLink(ctx, "O@toko.example")
	if err != nil || !strings.HasPrefix(link, "http://dash.test/reset?token=") || expires.Before(now) {
		t.Fatalf("reset link %q, %v, %v", link, expires, err)
	}
	if _, _, _, err := s.Store.PasswordResetLink(ctx, "nobody@toko.example"); !errors.Is(err, api.ErrNoSuchUser) {
		t.Fatalf("reset link for an unknown email: %v", err)
	}
	token := strings.TrimPrefix(link, "http://dash.test/reset?token=")
	code, loc, _ := c.post("/reset", url.Values{"csrf": {c.csrf("/reset")}, "token": {token}, "password": {"a brand new password"}})
	if code != http.StatusSeeOther || loc != "/login?reset=1" {
		t.Fatalf("reset: %d %q", code, loc)
	}
	if code, _, _ := c.post("/reset", url.Values{"csrf": {c.csrf("/reset")}, "token": {token}, "password": {"another new password"}}); code != http.StatusGone {
		t.Fatalf("reusing the link: %d, want 410", code)
	}
	now = now.Add(2 * time.Minute) // a new minute for the address
	if code := c.signIn("o@toko.example", "a brand new password"); code != http.StatusSeeOther {
		t.Fatalf("sign-in with the new password: %d", code)
	}
}

func TestLanguageRedirectStaysLocal(t *testing.T) {
	_, hs := testServer(t, nil)
	c := newClient(t, hs.URL)
	for next, want := range map[string]string{"/settings": "/settings", "//evil.example/x": "/", "https://evil.example": "/", "/\\evil": "/"} {
		if _, loc, _ := c.get("/lang/en?next=" + url.QueryEscape(next)); loc != want {
			t.Errorf("next %q: redirected to %q, want %q", next, loc, want)
		}
	}
	_, _, body := c.get("/login")
	if !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "Sign in") {
		t.Error("the lang cookie did not switch the page to English")
	}
	c.get("/lang/id")
	if _, _, body := c.get("/login"); !strings.Contains(body, `<html lang="id">`) || !strings.Contains(body, "Kata sandi") {
		t.Error("the page is not in Bahasa Indonesia after switching back")
	}
}

// TestMessagesComplete checks that every key the templates use has both
// languages, so no page shows a raw key.
func TestMessagesComplete(t *testing.T) {
	use := regexp.MustCompile(`\.T "([a-z.]+)"`)
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := templateFS.ReadFile("templates/" + e.Name())
		for _, m := range use.FindAllStringSubmatch(string(b), -1) {
			if v, ok := messages[m[1]]; !ok || v[0] == "" || v[1] == "" {
				t.Errorf("%s uses %q, missing from messages", e.Name(), m[1])
			}
		}
	}
}

// upload posts a CSV to /batches/upload as the browser's form does.
func (c *client) upload(csrf, name string, body []byte) (int, string) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf", csrf)
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write(body)
	_ = mw.Close()
	resp, err := c.c.Post(c.base+"/batches/upload", mw.FormDataContentType(), &buf)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func rowsCSV(n int, invalidAt int) []byte {
	var sb strings.Builder
	sb.WriteString("reference_id,bank_code,account_number,amount\n")
	for i := 1; i <= n; i++ {
		amount := 15000 + i%1000
		if i == invalidAt {
			amount = -1
		}
		fmt.Fprintf(&sb, "r-%d,bca,12%08d,%d\n", i, i, amount)
	}
	return []byte(sb.String())
}

// TestUploadChecksBigFiles: a 100,000-row file is checked, its invalid
// row listed and nothing sent; a 100,001-row file is refused whole.
func TestUploadChecksBigFiles(t *testing.T) {
	s, hs := testServer(t, nil)
	c := newClient(t, hs.URL)
	c.post("/signup", url.Values{"csrf": {c.csrf("/signup")}, "business": {"Toko"}, "email": {"o@toko.example"}, "password": {"long enough pw"}})
	csrf := c.csrf("/batches")
	if code, body := c.upload(csrf, "early.csv", rowsCSV(3, 0)); code != http.StatusOK || !strings.Contains(body, "belum aktif") {
		t.Fatalf("upload before Aktivasi: %d, want the page saying the environment is not active", code)
	}
	c.post("/disbursement/activate", url.Values{"csrf": {c.csrf("/disbursement")}})

	start := time.Now()
	code, body := c.upload(csrf, "big.csv", rowsCSV(100_000, 4242))
	if code != http.StatusOK || !strings.Contains(body, "<strong>99999</strong>") || !strings.Contains(body, `id="invalid-count"><strong>1</strong>`) {
		t.Fatalf("100,000-row upload: %d\n%.2000s", code, body)
	}
	if i := strings.Index(body, `id="row-errors"`); i < 0 {
		t.Fatal("no row errors table")
	} else if tbl := body[i:]; !regexp.MustCompile(`<td class="num">4242</td><td class="mono">amount</td>`).MatchString(tbl) {
		t.Logf("%.600s", tbl)
		t.Error("the invalid row (data row 4242) is not listed with its field")
	}
	t.Logf("checked 100,000 rows in %s", time.Since(start).Round(time.Millisecond))
	var n int
	if err := s.Store.db.QueryRow(context.Background(), `SELECT count(*) FROM disbursements`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d payouts after a check (err %v), want none", n, err)
	}
	code, body = c.upload(csrf, "too-big.csv", rowsCSV(100_001, 0))
	if code != http.StatusOK || !strings.Contains(body, "100.000 baris") {
		t.Fatalf("100,001-row upload: %d %.500s", code, body)
	}
}
