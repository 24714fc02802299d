package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/disburse/disburse/merchant"
)

// signIn signs the browser out (when signed in) and in as email.
func (b *browser) signIn(email, password string) {
	b.t.Helper()
	var signedIn any
	b.eval(`!!document.querySelector("header form[action='/logout'] button")`, &signedIn)
	if signedIn == true {
		b.submit("header form[action='/logout'] button", "#email")
	}
	b.open("/login", "#email")
	b.fill("#email", email)
	b.fill("#password", password)
	b.submit(`button[type=submit].primary`, "nav.menu")
}

// checkOnly runs check's axe-core and CSP checks without a screenshot
// (the README shows a few pages, not every state).
func (b *browser) checkOnly(name string) {
	b.t.Helper()
	shot := b.shot
	b.shot = false
	defer func() { b.shot = shot }()
	b.check(name)
}

// TestDashboardControlsInBrowser drives issue 14's dashboard pages in
// Chromium over the whole pipeline: the owner sets an approval policy and
// adds two finance users; one uploads a batch over the threshold, sees it
// held in the queue and cannot approve it (neither by the page nor by
// posting the form); the other approves it and the batch runs to
// completion. Then a pause and a resume (the banner on every page, the
// settings audit log), and a restricted key created and revoked. axe-core
// checks every new page.
func TestDashboardControlsInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser through the whole pipeline")
	}
	// The API reuses key lookups for a minute, so the revoked key's 401
	// below shows that the dashboard's revocation cleared them.
	p, dash := startBrowserDashboard(t, func(c *pipelineConfig) { c.authCacheTTL = time.Minute })
	runCtx, stopRunner := context.WithCancel(context.Background())
	t.Cleanup(stopRunner)
	go p.server.InquiryRunner().Run(runCtx)
	ctx := context.Background()
	b := newBrowser(t, dash.URL)
	const pw = "correct horse battery"

	// The owner signs up, activates sandbox and adds two finance users.
	b.open("/signup", "#business")
	b.fill("#business", "Toko Kendali")
	b.fill("#email", "owner@kendali.example")
	b.fill("#password", pw)
	b.submit(`button[type=submit].primary`, "#aktivasi")
	b.submit("#aktivasi", "#newkey")
	secretKey := b.value("#newkey")
	var merchantID string
	if err := p.pool.QueryRow(ctx, `SELECT merchant_id FROM dashboard_users WHERE email = 'owner@kendali.example'`).Scan(&merchantID); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"maker@kendali.example", "checker@kendali.example"} {
		b.open("/users", "#email")
		b.fill("#email", email)
		b.do(chromedp.SetValue(chromedp.CSS("#role"), "finance"))
		b.fill("#password", pw)
		b.submit(`form[action="/users"] button[type=submit]`, ".flash")
	}

	// The approval policy: batches of 5 items or more wait. A bad value
	// (past the browser's own check of the field) is refused by the server
	// with its field, nothing saved.
	b.open("/approvals", "#save-policy")
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action="/approvals/policy"]').noValidate = true`))
	b.fill("#batch_items", "-1")
	b.submit("#save-policy", ".error")
	if e := b.text(".error"); !strings.Contains(e, "batch_items") {
		t.Errorf("an invalid policy is refused with %q, want batch_items named", e)
	}
	var policies int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM approval_policies WHERE merchant_id = $1`, merchantID).Scan(&policies); err != nil || policies != 0 {
		t.Fatalf("an invalid policy was stored (%d rows, err %v)", policies, err)
	}
	b.fill("#payout_amount", "1000000")
	b.fill("#batch_items", "5")
	b.fill("#expires_after_minutes", "120")
	b.submit("#save-policy", ".flash")
	var items, expires int
	if err := p.pool.QueryRow(ctx, `SELECT batch_items, expires_after FROM approval_policies WHERE merchant_id = $1 AND environment = 'sandbox'`,
		merchantID).Scan(&items, &expires); err != nil || items != 5 || expires != 7200 {
		t.Fatalf("policy stored as %d items, %d s (err %v), want 5 and 7200", items, expires, err)
	}
	b.checkOnly("approvals-policy")

	// The maker uploads 20 rows: held, nothing debited.
	b.signIn("maker@kendali.example", pw)
	b.open("/batches", "#file")
	b.fill("#reference_id", "held-batch")
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{batchCSV(t, 20)}))
	b.submit("#check", "#quote")
	// The quote before sending: 20 payouts, their fees, bca's share, the
	// balance covering it; nothing debited yet.
	if got := b.text("#quote-items"); got != "20" {
		t.Errorf("the quote pays %q payouts, want 20", got)
	}
	if got := b.text("#quote-banks tbody"); !strings.Contains(got, "bca\t20") {
		t.Errorf("the quote's banks %q, want bca with 20 items", got)
	}
	if got := b.text("#quote-balance"); !strings.Contains(got, "Covers it") {
		t.Errorf("the quote's balance %q, want covered (the demo deposit)", got)
	}
	if got := b.text("#needs-approval"); !strings.Contains(got, "waits in Approvals") {
		t.Errorf("the check page does not say the batch will wait for approval: %q", got)
	}
	b.check("batch-quote")
	var quoteID string
	if err := p.pool.QueryRow(ctx, `SELECT id FROM batch_quotes WHERE merchant_id = $1 ORDER BY created_at DESC LIMIT 1`, merchantID).Scan(&quoteID); err != nil {
		t.Fatalf("no quote stored: %v", err)
	}
	if got := b.value(`input[name="quote_id"]`); got != quoteID {
		t.Errorf("the send form carries quote %q, want the stored quote %q", got, quoteID)
	}
	b.submit("#send", "#hold")
	if got := b.text("#hold-approval"); got != "Pending" {
		t.Errorf("the batch's approval reads %q, want Pending", got)
	}
	if got := b.text("#counts"); !strings.Contains(got, "AWAITING_APPROVAL 20") {
		t.Errorf("the batch's counts %q, want 20 AWAITING_APPROVAL", got)
	}
	batchID := strings.TrimPrefix(b.evalString(`location.pathname`), "/batches/")
	b.check("batch-held")
	var debited int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status <> 'AWAITING_APPROVAL'`, batchID).Scan(&debited); err != nil || debited != 0 {
		t.Fatalf("%d of the held batch's payouts left AWAITING_APPROVAL before approval (err %v)", debited, err)
	}
	b.open("/payouts?status=AWAITING_APPROVAL", "#results")
	var n any
	b.eval(`document.querySelectorAll("#results tbody tr").length`, &n)
	if n != float64(20) {
		t.Errorf("the payouts filter AWAITING_APPROVAL found %v rows, want 20", n)
	}

	// In the queue, the maker sees it but may not decide it: no form, and
	// the server refuses a forged post of the form.
	b.open("/approvals", "#queue")
	if row := b.text("#hold-" + batchID); !strings.Contains(row, "user:maker@kendali.example") || !strings.Contains(row, "20") {
		t.Errorf("the queue's row %q, want its creator and 20 items", row)
	}
	var forms any
	b.eval(`document.querySelectorAll("#hold-`+batchID+` form").length`, &forms)
	if forms != float64(0) {
		t.Errorf("the creator is offered %v decision forms on its own batch", forms)
	}
	b.checkOnly("approvals-maker")
	var forged any
	b.eval(`(async () => {
		const csrf = document.querySelector("input[name=csrf]").value;
		const r = await fetch("/approvals/batch/`+batchID+`", {method: "POST", body: new URLSearchParams({csrf, decision: "approve"})});
		return await r.text();
	})()`, &forged)
	if s, _ := forged.(string); !strings.Contains(s, "may not approve or reject") {
		t.Errorf("the creator's forged approval answered %.300q, want the maker-checker refusal", s)
	}
	var status string
	if err := p.pool.QueryRow(ctx, `SELECT approval_status FROM holds WHERE id = $1`, batchID).Scan(&status); err != nil || status != "PENDING" {
		t.Fatalf("after the creator's attempt the hold is %q (err %v), want PENDING", status, err)
	}

	// The checker approves with a note; the batch runs to completion.
	b.signIn("checker@kendali.example", pw)
	b.open("/approvals", "#queue")
	b.fill("#note-"+batchID, "checked against the refund list")
	b.check("approvals")
	b.submit("#hold-"+batchID+" button.approve", ".flash")
	b.open("/approvals?status=APPROVED", "#queue")
	if row := b.text("#hold-" + batchID); !strings.Contains(row, "user:checker@kendali.example") || !strings.Contains(row, "checked against the refund list") {
		t.Errorf("the approved history row %q, want the checker and the note", row)
	}
	b.checkOnly("approvals-history")
	b.open("/batches/"+batchID, "#bar")
	waitCtx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS(`#batch[data-done="true"]`))); err != nil {
		t.Fatalf("the approved batch did not complete on the page within 2 minutes (%s): %v", b.text("#progress-text"), err)
	}
	if got := b.text("#finished"); got != "20" {
		t.Errorf("finished %s, want 20", got)
	}
	b.open("/batches/"+batchID, "#hold")
	if got := b.text("#hold-approval"); got != "Approved" {
		t.Errorf("the completed batch's approval reads %q", got)
	}
	// The same file again: its quote lists every row as a duplicate.
	b.open("/batches", "#file")
	b.fill("#reference_id", "held-batch-again")
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{batchCSV(t, 20)}))
	b.submit("#check", "#quote")
	if got := b.text("#duplicate-count"); !strings.HasPrefix(got, "20 ") {
		t.Errorf("the re-uploaded file's duplicates: %q, want 20", got)
	}
	if got := b.text("#quote-items"); got != "0" {
		t.Errorf("the re-uploaded file would pay %q payouts, want 0", got)
	}

	// A batch scheduled for tomorrow (under the policy's 5 items): held
	// with nothing debited, shown SCHEDULED, cancelled before its time.
	wib := time.FixedZone("WIB", 7*3600)
	tomorrow := time.Now().In(wib).Add(24 * time.Hour).Format("2006-01-02T15:04")
	b.open("/batches", "#file")
	b.fill("#scheduled_at", time.Now().In(wib).Add(-time.Hour).Format("2006-01-02T15:04"))
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{batchCSV(t, 0, "sched-0,bca,1234567800,10000,x")}))
	b.submit("#check", ".error")
	if got := b.text(".error"); !strings.Contains(got, "in the future") {
		t.Errorf("a send time in the past is refused with %q", got)
	}
	b.open("/batches", "#file")
	b.fill("#reference_id", "scheduled-batch")
	b.fill("#scheduled_at", tomorrow)
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{batchCSV(t, 0,
		"sched-1,bca,1234567801,10000,x", "sched-2,bca,1234567802,10000,x", "sched-3,bca,1234567803,10000,x")}))
	b.submit("#check", "#scheduled-note")
	b.submit("#send", "#hold")
	schedPath := b.evalString(`location.pathname`)
	if got := b.text("#counts"); !strings.Contains(got, "SCHEDULED 3") {
		t.Errorf("the scheduled batch's counts %q, want 3 SCHEDULED", got)
	}
	if got := b.text("#hold"); !strings.Contains(got, "Scheduled for") {
		t.Errorf("the scheduled batch's hold %q, want its time", got)
	}
	b.open("/batches", "#file")
	if got := b.text("table tbody tr:first-child td.held"); !strings.Contains(got, "Scheduled for") {
		t.Errorf("the batch list shows the scheduled batch's hold as %q", got)
	}
	b.open(schedPath, "#cancel-batch")
	b.submit("#cancel-batch", "#counts")
	if got := b.text("#counts"); !strings.Contains(got, "CANCELLED 3") {
		t.Errorf("after cancelling, the batch's counts %q, want 3 CANCELLED", got)
	}
	var debits int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM disbursements d JOIN batches b ON b.id = d.batch_id
		WHERE b.reference_id = 'scheduled-batch' AND d.debited_at IS NOT NULL`).Scan(&debits); err != nil || debits != 0 {
		t.Errorf("%d payouts of the cancelled scheduled batch were debited (err %v), want none", debits, err)
	}

	// Single payouts over the policy's 1,000,000, created through the API
	// (the key is their maker): one rejected in the queue with a note
	// (FAILED APPROVAL_REJECTED, nothing debited), one cancelled from its page.
	held := func(ref string) string {
		code, out, _ := call(t, p.api.URL, secretKey, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": ref}, payoutBody(ref, "1234567811", 2_000_000))
		id, _ := out["id"].(string)
		if code != 201 && code != 202 || out["status"] != "AWAITING_APPROVAL" {
			t.Fatalf("payout over the policy: %d %v, want AWAITING_APPROVAL", code, out)
		}
		return id
	}
	rejectID, cancelID := held("big-1"), held("big-2")
	b.open("/approvals", "#hold-"+rejectID)
	b.fill("#note-"+rejectID, "not on the list")
	b.submit("#hold-"+rejectID+" button.reject", ".flash")
	var st, code string
	if err := p.pool.QueryRow(ctx, `SELECT status, coalesce(failure_code, '') FROM disbursements WHERE id = $1`, rejectID).Scan(&st, &code); err != nil || st != "FAILED" || code != "APPROVAL_REJECTED" {
		t.Errorf("the rejected payout is %s %s (err %v), want FAILED APPROVAL_REJECTED", st, code, err)
	}
	b.open("/payouts/"+rejectID, "#hold")
	if got := b.text("#hold"); !strings.Contains(got, "Rejected") || !strings.Contains(got, "not on the list") {
		t.Errorf("the rejected payout's hold reads %q, want Rejected and the note", got)
	}
	b.open("/payouts/"+cancelID, "#cancel-payout")
	b.checkOnly("payout-held")
	b.submit("#cancel-payout", ".flash")
	if got := b.text("#payout-status"); got != "CANCELLED" {
		t.Errorf("the cancelled held payout reads %q", got)
	}

	// Pause and resume: the banner on every page while paused.
	b.open("/controls", "#pause")
	b.checkOnly("controls")
	b.fill("#reason", "checking a suspicious file")
	b.submit("#pause", "#resume")
	for _, path := range []string{"/payouts", "/batches", "/approvals", "/keys"} {
		b.open(path, "#paused-banner")
		if got := b.text("#paused-banner"); !strings.Contains(got, "user:checker@kendali.example") || !strings.Contains(got, "checking a suspicious file") {
			t.Errorf("the banner on %s reads %q, want who paused and why", path, got)
		}
	}
	b.open("/controls", "#resume")
	b.check("controls-paused")
	b.submit("#resume", "#pause")
	var banners any
	b.eval(`document.querySelectorAll("#paused-banner").length`, &banners)
	if banners != float64(0) {
		t.Error("the pause banner stays after resuming")
	}
	var pauses int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM settings_audit WHERE merchant_id = $1 AND setting = 'payouts_paused' AND actor = 'user:checker@kendali.example'`,
		merchantID).Scan(&pauses); err != nil || pauses != 2 {
		t.Errorf("the settings audit log has %d pause changes by the user (err %v), want 2 (pause, resume)", pauses, err)
	}

	// Velocity limits (owner): stored and in the audit log.
	b.signIn("owner@kendali.example", pw)
	b.open("/controls", "#save-velocity")
	b.fill("#max_count_per_day", "5000")
	b.submit("#save-velocity", ".flash")
	var perDay int64
	if err := p.pool.QueryRow(ctx, `SELECT max_count_per_day FROM payout_controls WHERE merchant_id = $1 AND environment = 'sandbox'`, merchantID).Scan(&perDay); err != nil || perDay != 5000 {
		t.Errorf("max_count_per_day stored as %d (err %v), want 5000", perDay, err)
	}

	// A restricted key: created (shown once), works, revoked, stops working.
	b.open("/keys", "#create-key")
	b.fill("#label", "reporting job")
	b.do(chromedp.Click(chromedp.CSS(`#scope-payouts\:read`)), chromedp.Click(chromedp.CSS(`#scope-reports`)))
	b.submit("#create-key", "#newkey")
	secret := b.value("#newkey")
	ms := merchant.NewStore(p.pool)
	if _, err := ms.Authenticate(ctx, secret, time.Now()); err != nil {
		t.Fatalf("the new restricted key does not authenticate: %v", err)
	}
	if row := b.text("#keys tbody"); !strings.Contains(row, "reporting job") || !strings.Contains(row, "payouts:read, reports") {
		t.Errorf("the keys list %q, want the label and its scopes", row)
	}
	b.check("keys")
	b.open("/keys", "#keys")
	var shown any
	b.eval(`!!document.querySelector("#newkey")`, &shown)
	if shown == true {
		t.Error("the restricted key is shown again on a later visit")
	}
	if code, out, _ := call(t, p.api.URL, secret, "GET", "/v1/disbursements", nil, nil); code != 200 {
		t.Fatalf("the restricted key reading payouts: %d %v", code, out)
	}
	b.submit("#keys button.revoke", ".flash")
	if got := b.text("#keys .keystatus"); got != "REVOKED" {
		t.Errorf("after revoking the key's status reads %q", got)
	}
	if _, err := ms.Authenticate(ctx, secret, time.Now()); err == nil {
		t.Error("a revoked key still authenticates")
	}
	// At once on the API, though it had just looked the key up.
	if code, _, _ := call(t, p.api.URL, secret, "GET", "/v1/disbursements", nil, nil); code != 401 {
		t.Errorf("the revoked key's call answered %d, want 401", code)
	}

	// Bulk account inquiry: an invalid account is refused with its row,
	// nothing asked; then three accounts answered, and asked again, from
	// the cache.
	b.open("/inquiries", "#accounts")
	b.fill("#accounts", "bca,1234567890\nnope,12")
	b.submit("#ask", "#inquiry-errors")
	if got := b.text("#inquiry-errors tbody"); !strings.Contains(got, "bank_code") {
		t.Errorf("the invalid account's error %q, want bank_code named", got)
	}
	var jobs int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM account_inquiry_jobs WHERE merchant_id = $1`, merchantID).Scan(&jobs); err != nil || jobs != 0 {
		t.Fatalf("%d inquiry jobs after an invalid list (err %v), want 0", jobs, err)
	}
	b.checkOnly("inquiries")
	accounts := "bank_code,account_number\nbca,1234567890\nbca,1234560000\novo,+62 812-3456-7890"
	for round, wantCached := range []float64{0, 3} {
		b.open("/inquiries", "#accounts")
		b.fill("#accounts", accounts)
		b.submit("#ask", "#inquiry")
		waitCtx, cancel := context.WithTimeout(b.ctx, time.Minute)
		err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS(`#inquiry[data-done="true"]`)))
		cancel()
		if err != nil {
			t.Fatalf("the inquiry did not complete within a minute (%s): %v", b.text("#inq-progress"), err)
		}
		res := b.text("#inquiry-results tbody")
		if !strings.Contains(res, "VALID") || !strings.Contains(res, "INVALID") {
			t.Errorf("round %d: results %q, want VALID and INVALID accounts", round, res)
		}
		var cached any
		b.eval(`[...document.querySelectorAll("#inquiry-results td.cache")].filter(td => td.innerText.trim() !== "").length`, &cached)
		if cached != wantCached {
			t.Errorf("round %d: %v of 3 answers from the cache, want %v", round, cached, wantCached)
		}
		if round == 1 {
			b.check("inquiry")
		}
	}
}
