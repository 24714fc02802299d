package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/disburse/disburse/callbacks/signature"
	"github.com/disburse/disburse/dashboard"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/merchant"
)

// envScreenshots makes the browser test write each page's screenshot to
// docs/screenshots/ (for the README); normal runs leave the tree alone.
const envScreenshots = "DISBURSE_SCREENSHOTS"

// browser drives one headless Chromium tab through the dashboard.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	axe  string
	shot bool
}

// newBrowser starts Debian's Chromium, headless, with a fresh profile.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	chromium := testenv.Chromium(t)
	axe := testenv.AxeJS(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, base: base, axe: string(axe), shot: os.Getenv(envScreenshots) == "1"}
	// Every page records the Content-Security-Policy violations it meets,
	// so that a blocked script or style fails the test instead of
	// silently breaking a page.
	// The first action starts the browser, which lives as long as the
	// context of that call: run it on ctx itself, without a timeout.
	err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = []; document.addEventListener("securitypolicyviolation",
				e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`})
		return err
	}))
	if err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return b
}

// do runs actions with a bound on how long they may take.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
		b.t.Fatalf("browser: %v\npage text:\n%s", err, html)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) value(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("value of %s: %v", sel, err)
	}
	return s
}

func (b *browser) eval(js string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %.60q: %v", js, err)
	}
	if out != nil {
		*out.(*any) = v
	}
}

// open navigates to path and waits for sel.
func (b *browser) open(path, sel string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// submit clicks a form's button and waits for sel on the page that answers.
func (b *browser) submit(button, sel string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`document.body.dataset.stale = "1"`),
		chromedp.Click(chromedp.CSS(button)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-stale]) `+sel)))
}

// fill sets an input's value (with its input and change events).
func (b *browser) fill(sel, text string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.CSS(sel), text))
}

// check runs axe-core on the page (WCAG 2 A and AA rules: form labels,
// names, contrast, landmarks, ...), fails on any violation, checks that no
// Content-Security-Policy violation happened, and takes the page's
// screenshot when asked to.
func (b *browser) check(name string) {
	b.t.Helper()
	var res any
	b.eval(`(async () => {
		if (!window.axe) { eval(`+jsString(b.axe)+`); }
		const r = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}});
		return {violations: r.violations.map(v => v.id + ": " + v.help + " [" + v.nodes.map(n => n.target.join(" ")).join(", ") + "]"),
			csp: window.__csp || []};
	})()`, &res)
	m := res.(map[string]any)
	for _, v := range m["violations"].([]any) {
		b.t.Errorf("axe on %s: %s", name, v)
	}
	for _, v := range m["csp"].([]any) {
		b.t.Errorf("Content-Security-Policy violation on %s: %s", name, v)
	}
	if b.shot {
		b.screenshot(name)
	}
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) > 150<<10 {
		b.t.Errorf("screenshot %s is %d KB; keep each under 150 KB", name, len(png)>>10)
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// download fetches a link of the page with the browser's session and
// returns the status, Content-Disposition and body.
func (b *browser) download(sel string) (int, string, string) {
	b.t.Helper()
	var res any
	b.eval(`(async () => {
		const r = await fetch(document.querySelector(`+jsString(sel)+`).href);
		return {status: r.status, disposition: r.headers.get("content-disposition") || "", body: await r.text()};
	})()`, &res)
	m := res.(map[string]any)
	return int(m["status"].(float64)), m["disposition"].(string), m["body"].(string)
}

func jsString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == 0x2028 || r == 0x2029 || r < 0x20:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// batchCSV writes a batch file of n rows; every 100th row pays an account
// the sandbox bank refuses (ending 0000: INVALID_ACCOUNT). extra rows are
// appended as they are.
func batchCSV(t *testing.T, n int, extra ...string) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("reference_id,bank_code,account_number,amount,description\n")
	for i := 1; i <= n; i++ {
		acct := fmt.Sprintf("12%08d", i)
		if i%100 == 0 {
			acct = fmt.Sprintf("12%04d0000", i/100)
		}
		fmt.Fprintf(&sb, "dash-row-%d,bca,%s,%d,refund %d\n", i, acct, 10_000+i, i)
	}
	for _, e := range extra {
		sb.WriteString(e + "\n")
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("payouts-%d.csv", n))
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// signedReceiver is a merchant's callback endpoint that checks signatures.
type signedReceiver struct {
	mu     sync.Mutex
	secret string
	got    []string // types received with a valid signature
	bad    int
}

func (c *signedReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.secret == "" || signature.Verify(c.secret, r.Header.Get(signature.HeaderName), body, 5*time.Minute, time.Now()) != nil {
		c.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	c.got = append(c.got, string(body))
	_, _ = w.Write([]byte("received-by-test-receiver"))
}

// TestDashboardInBrowser drives Debian's Chromium through the dashboard on
// the whole pipeline: sign-up, Aktivasi (by keyboard), key rotation, IP
// whitelist, callback URL and test callback, a file with invalid rows
// (nothing sent), a 1,000-row upload followed live to completion, its
// results file, payout search and a payout's page, and the report with its
// download. Every page passes axe-core and causes no CSP violation.
// startBrowserDashboard starts the whole pipeline and the dashboard on it.
func startBrowserDashboard(t *testing.T, tune ...func(*pipelineConfig)) (*pipeline, *httptest.Server) {
	t.Helper()
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), tune...)
	d, err := dashboard.New(p.server, p.pool, "http://dashboard.test", false)
	if err != nil {
		t.Fatal(err)
	}
	p.server.Dashboard = d.Store
	dash := httptest.NewServer(d.Handler())
	t.Cleanup(dash.Close)
	return p, dash
}

func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser through the whole pipeline")
	}
	p, dash := startBrowserDashboard(t)
	recv := &signedReceiver{}
	receiver := httptest.NewServer(recv)
	t.Cleanup(receiver.Close)
	ctx := context.Background()

	b := newBrowser(t, dash.URL)

	// Sign up: a new business, its owner signed in, in Bahasa Indonesia.
	b.open("/login", "#email")
	b.check("login")
	b.do(chromedp.Click(chromedp.CSS(`a[href="/signup"]`)), chromedp.WaitVisible(chromedp.CSS("#business")))
	b.check("signup")
	b.fill("#business", "Toko Uji Coba")
	b.fill("#email", "owner@toko.example")
	b.fill("#password", "correct horse battery")
	b.submit(`button[type=submit].primary`, "#aktivasi")
	if got := b.text("h1"); got != "Disbursement" {
		t.Fatalf("after sign-up the page is %q, want the Disbursement menu", got)
	}
	// Chromium asks for English; the switch offers Bahasa Indonesia and back.
	b.do(chromedp.Click(chromedp.CSS(".lang")), chromedp.WaitVisible(chromedp.CSS(`html[lang=id]`)))
	if got := b.text("#aktivasi"); got != "Aktivasi" {
		t.Errorf("the Aktivasi button reads %q in Bahasa Indonesia", got)
	}
	if got := b.text(`nav a[href="/payouts"]`); got != "Transaksi" {
		t.Errorf("the Payouts menu reads %q in Bahasa Indonesia, want Transaksi", got)
	}
	b.check("disbursement-inactive-id")
	b.do(chromedp.Click(chromedp.CSS(".lang")), chromedp.WaitVisible(chromedp.CSS(`html[lang=en]`)))
	var merchantID string
	if err := p.pool.QueryRow(ctx, `SELECT merchant_id FROM dashboard_users WHERE email = 'owner@toko.example'`).Scan(&merchantID); err != nil {
		t.Fatal(err)
	}
	b.check("disbursement-inactive")

	// Aktivasi, by keyboard: Tab from the top reaches the button, Enter presses it.
	b.do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`))
	reached := false
	for i := 0; i < 30 && !reached; i++ {
		b.do(chromedp.KeyEvent(kb.Tab))
		var id any
		b.eval(`document.activeElement ? document.activeElement.id || document.activeElement.className : ""`, &id)
		if i == 0 && id != "skip" {
			t.Errorf("the first Tab focuses %q, want the skip link", id)
		}
		reached = id == "aktivasi"
	}
	if !reached {
		t.Fatal("Tab never reached the Aktivasi button")
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.body.dataset.stale = "1"`), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-stale]) #newkey`)))
	sandboxKey := b.value("#newkey")
	if !strings.HasPrefix(sandboxKey, "sk_sandbox_") {
		t.Fatalf("Aktivasi showed %q, want a sandbox secret key", sandboxKey)
	}
	if got := b.text("#available"); got != "IDR 100,000,000,000" {
		t.Errorf("balance after Aktivasi %q, want the demo deposit IDR 100,000,000,000", got)
	}
	ms := merchant.NewStore(p.pool)
	if _, err := ms.Authenticate(ctx, sandboxKey, time.Now()); err != nil {
		t.Fatalf("the key Aktivasi showed does not authenticate: %v", err)
	}
	b.check("disbursement")
	// Shown once: the next visit has no key on the page.
	b.open("/disbursement", "#available")
	var keyShown any
	b.eval(`!!document.querySelector("#newkey")`, &keyShown)
	if keyShown == true {
		t.Error("the sandbox key is shown again on a later visit")
	}

	// Settings: rotate the key (the new one shown once, the old one's grace shown).
	b.open("/settings", "#rotate")
	b.submit("#rotate", "#newkey")
	newKey := b.value("#newkey")
	if !strings.HasPrefix(newKey, "sk_sandbox_") || newKey == sandboxKey {
		t.Fatalf("rotation showed %q", newKey)
	}
	if g := b.text("#grace"); !strings.Contains(g, "works until") {
		t.Errorf("rotation does not show the old key's grace: %q", g)
	}
	for _, k := range []string{sandboxKey, newKey} {
		if _, err := ms.Authenticate(ctx, k, time.Now()); err != nil {
			t.Errorf("after rotation key %.16s... does not work (the old one keeps a grace period): %v", k, err)
		}
	}
	b.check("settings-rotated")

	// IP whitelist: a bad entry is refused with its reason, nothing saved;
	// then a good list is saved, and the caller's own address is shown.
	if addr := b.text("#client-addr"); addr != "127.0.0.1" {
		t.Errorf("the whitelist shows the caller's address %q, want 127.0.0.1", addr)
	}
	b.fill("#ip_whitelist", "10.0.0.0/8\n999.1.1.1")
	b.submit("#save-ip", ".error")
	if e := b.text(".error"); !strings.Contains(e, "ip_whitelist[1]") {
		t.Errorf("the invalid entry is not named: %q", e)
	}
	if a, _ := ms.Access(ctx, merchantID, "sandbox", time.Now()); len(a.IPWhitelist) != 0 {
		t.Fatalf("an invalid whitelist was saved: %v", a.IPWhitelist)
	}
	b.fill("#ip_whitelist", "127.0.0.1\n10.0.0.0/8")
	b.submit("#save-ip", ".flash")
	if a, _ := ms.Access(ctx, merchantID, "sandbox", time.Now()); len(a.IPWhitelist) != 2 {
		t.Fatalf("whitelist saved as %v, want 2 entries", a.IPWhitelist)
	}

	// Callback URL, then a test callback showing the receiver's answer.
	b.fill("#callback_url", receiver.URL+"/hooks/disburse")
	b.submit("#save-callback", ".flash")
	recv.mu.Lock()
	recv.secret = b.value("#callback_secret")
	recv.mu.Unlock()
	b.submit("#send-test", "#test-result")
	if res := b.text("#test-result"); !strings.Contains(res, "HTTP 200") || !strings.Contains(res, "received-by-test-receiver") {
		t.Errorf("test callback result %q, want the receiver's HTTP 200 and its body", res)
	}
	recv.mu.Lock()
	if len(recv.got) != 1 || !strings.Contains(recv.got[0], `"type":"callback.test"`) || recv.bad != 0 {
		t.Errorf("the receiver got %d signed test callbacks (%d badly signed), want 1", len(recv.got), recv.bad)
	}
	recv.mu.Unlock()
	b.check("settings")

	// Every change is in the settings audit log with the user who made it.
	rows, err := p.pool.Query(ctx, `SELECT setting FROM settings_audit WHERE merchant_id = $1 AND actor = 'user:owner@toko.example' ORDER BY id`, merchantID)
	if err != nil {
		t.Fatal(err)
	}
	var settings []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		settings = append(settings, s)
	}
	if strings.Join(settings, ",") != "secret_key,ip_whitelist,callback_url" {
		t.Errorf("audit log of the user: %v, want secret_key, ip_whitelist, callback_url", settings)
	}

	// A file with invalid rows: they are listed, nothing is sent.
	b.open("/batches", "#file")
	b.check("batches")
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{batchCSV(t, 3, "bad-1,nobank,1234567890,15000,x", "bad-2,bca,1234567890,-4,x")}))
	b.submit("#check", "#invalid-count")
	if got := b.text("#invalid-count"); !strings.HasPrefix(got, "2 ") {
		t.Errorf("invalid rows: %q, want 2", got)
	}
	if errs := b.text("#row-errors"); !strings.Contains(errs, "bank_code") || !strings.Contains(errs, "amount") {
		t.Errorf("the invalid rows do not name their fields: %q", errs)
	}
	var payouts int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM disbursements WHERE merchant_id = $1`, merchantID).Scan(&payouts); err != nil || payouts != 0 {
		t.Fatalf("after checking a file %d payouts exist (err %v), want none before sending", payouts, err)
	}
	b.check("batch-check-invalid")

	// 1,000 rows: checked, sent, followed live to completion.
	b.open("/batches", "#file")
	b.fill("#reference_id", "refunds-dec")
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{batchCSV(t, 1000)}))
	b.submit("#check", "#check-summary")
	if got := b.text("#check-summary"); !strings.HasPrefix(got, "1000 valid rows") {
		t.Fatalf("check of 1,000 valid rows: %q", got)
	}
	b.check("batch-check")
	start := time.Now()
	b.submit("#send", "#bar")
	b.check("batch-progress")
	// The page is not reloaded: the live updates (server-sent events) move it.
	waitCtx, cancel := context.WithTimeout(b.ctx, 3*time.Minute)
	defer cancel()
	if err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS(`#batch[data-done="true"]`))); err != nil {
		t.Fatalf("the batch did not complete on the page within 3 minutes (%s): %v", b.text("#progress-text"), err)
	}
	t.Logf("1,000-row batch completed on the page %s after sending", time.Since(start).Round(time.Millisecond))
	if got := b.text("#finished"); got != "1000" {
		t.Errorf("finished %s, want 1000", got)
	}
	if got := b.text("#failed"); got != "10" {
		t.Errorf("failed %s, want 10 (every 100th account is refused)", got)
	}
	if got := b.text("#batch-status"); got != "COMPLETED" {
		t.Errorf("batch status %s", got)
	}
	if v, _ := chromedp.Run(b.ctx, chromedp.Evaluate[float64](`document.getElementById("bar").value`)); v != 1000 {
		t.Errorf("progress bar at %v, want 1000", v)
	}
	status, disp, body := b.download("#results")
	results, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if status != 200 || !strings.Contains(disp, "attachment") || err != nil || len(results) != 1001 {
		t.Fatalf("results file: status %d, %q, %d lines, err %v", status, disp, len(results), err)
	}
	batchURL := b.evalString(`location.pathname`)
	b.check("batch-done")

	// Payout search: by reference, then by status; a payout's page.
	b.open("/payouts", "#reference_id")
	b.fill("#reference_id", "dash-row-17")
	b.submit("#search", "#results")
	var n any
	b.eval(`document.querySelectorAll("#results tbody tr").length`, &n)
	if n != float64(1) {
		t.Fatalf("search by reference found %v rows, want 1", n)
	}
	b.check("payouts")
	b.open("/payouts?status=FAILED&batch_id="+strings.TrimPrefix(batchURL, "/batches/"), "#results")
	b.eval(`document.querySelectorAll("#results tbody tr").length`, &n)
	if n != float64(10) {
		t.Errorf("search by batch and status FAILED found %v rows, want 10", n)
	}
	// By bank and date (today in Jakarta): pages of 50, newest first.
	today := time.Now().In(time.FixedZone("WIB", 7*3600)).Format(time.DateOnly)
	b.open("/payouts", "#bank_code")
	b.do(chromedp.SetValue(chromedp.CSS("#bank_code"), "bca"))
	b.fill("#from", today)
	b.fill("#to", today)
	b.submit("#search", "#results")
	b.eval(`document.querySelectorAll("#results tbody tr").length`, &n)
	if n != float64(50) {
		t.Errorf("search by bank and date found %v rows on the first page, want 50", n)
	}
	b.do(chromedp.Click(chromedp.CSS(`a[href^="/payouts?"]`)), chromedp.WaitVisible(chromedp.CSS("#results")))
	if first := b.text("#results tbody tr td"); !strings.HasPrefix(first, "dash-row-") {
		t.Errorf("second page starts with %q", first)
	}
	b.open("/payouts", "#reference_id")
	b.fill("#reference_id", "dash-row-17")
	b.submit("#search", "#results")
	b.do(chromedp.Click(chromedp.CSS("#results tbody a")), chromedp.WaitVisible(chromedp.CSS("#payout-status")))
	if st := b.text("#payout-status"); st != "COMPLETED" {
		t.Errorf("payout page status %q", st)
	}
	if tl := b.text("ol.timeline"); !strings.Contains(tl, "status COMPLETED") {
		t.Errorf("timeline without its COMPLETED event: %q", tl)
	}
	if calls := b.text("#bank-h + ol"); !strings.Contains(calls, "transfer call") {
		t.Errorf("bank calls: %q", calls)
	}
	b.check("payout")
	// Its callback (recorded by the callback stage moments after the
	// payout ended) can be sent again.
	payoutPath := b.evalString(`location.pathname`)
	for i := 0; ; i++ {
		var has any
		b.eval(`!!document.querySelector('form[action$="/redeliver"] button')`, &has)
		if has == true {
			break
		}
		if i == 40 {
			t.Fatal("the payout's callback never appeared on its page")
		}
		time.Sleep(250 * time.Millisecond)
		b.open(payoutPath, "#payout-status")
	}
	b.submit(`form[action$="/redeliver"] button`, ".flash")
	if f := b.text(".flash"); !strings.Contains(f, "queued for redelivery") {
		t.Errorf("redeliver answered %q", f)
	}

	// Reports: the sink fills ClickHouse within seconds; the chart, the
	// table and the CSV download.
	deadline := time.Now().Add(90 * time.Second)
	for {
		b.open("/reports?group_by=status", "#show")
		var have any
		b.eval(`(document.querySelector("#summary") || {innerText: ""}).innerText`, &have)
		if s, _ := have.(string); strings.Contains(s, "COMPLETED\t990") || strings.Contains(s, "COMPLETED 990") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the report never showed 990 COMPLETED payouts: %v", have)
		}
		time.Sleep(time.Second)
	}
	var bars any
	b.eval(`document.querySelectorAll("#chart rect").length`, &bars)
	if bars != float64(2) {
		t.Errorf("chart by status has %v bars, want 2 (COMPLETED, FAILED)", bars)
	}
	b.check("reports")
	status, disp, body = b.download("#download")
	report, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if status != 200 || !strings.Contains(disp, "attachment") || err != nil || len(report) != 1001 {
		t.Errorf("report download: status %d, %q, %d lines, err %v", status, disp, len(report), err)
	}

	// Production: requested in the dashboard, listed to the operator,
	// approved through the operator API.
	b.do(chromedp.SetValue(chromedp.CSS("#environment"), "production"),
		chromedp.Evaluate[chromedp.Void](`document.body.dataset.stale = "1"`),
		chromedp.Click(chromedp.CSS(".envswitch button")),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-stale]) .env-production`)))
	b.open("/disbursement", "form[action='/disbursement/request-production'] button")
	b.submit("form[action='/disbursement/request-production'] button", "#prod-h")
	code, out, _ := call(t, p.operator.URL, "", "GET", "/operator/v1/activation-requests", map[string]string{"Authorization": "Bearer " + testOperatorToken}, nil)
	if code != 200 || !strings.Contains(fmt.Sprint(out["data"]), merchantID) {
		t.Fatalf("activation requests: %d %v", code, out)
	}
	code, _, _ = call(t, p.operator.URL, "", "POST", "/operator/v1/merchants/"+merchantID+"/production/activate", map[string]string{"Authorization": "Bearer " + testOperatorToken}, nil)
	if code != 201 {
		t.Fatalf("operator approval: %d", code)
	}
	b.open("/disbursement", "#prod-h")
	if got := b.text("#prod-h"); !strings.Contains(got, "Active") {
		t.Errorf("production after approval: %q", got)
	}
	b.check("disbursement-production")

	// Sign out ends the session.
	b.submit("header form[action='/logout'] button", "#email")
	b.open("/settings", "#email")

	// A forgotten password: the operator issues a link, the user sets a
	// new password through it and signs in with it.
	code, out, _ = call(t, p.operator.URL, "", "POST", "/operator/v1/users/password-reset",
		map[string]string{"Authorization": "Bearer " + testOperatorToken}, map[string]string{"email": "owner@toko.example"})
	link, _ := out["reset_url"].(string)
	if code != 201 || !strings.HasPrefix(link, "http://dashboard.test/reset?token=") {
		t.Fatalf("password reset link: %d %v", code, out)
	}
	b.open(strings.Replace(link, "http://dashboard.test", "", 1), "#password")
	b.check("reset")
	b.fill("#password", "a brand new password")
	b.submit(`button[type=submit].primary`, "#email")
	b.fill("#email", "owner@toko.example")
	b.fill("#password", "a brand new password")
	b.submit(`button[type=submit].primary`, "#available")
}

func (b *browser) evalString(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("evaluate %q: %v", js, err)
	}
	return s
}
