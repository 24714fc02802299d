package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/schemas/events"
)

// requestRecords counts the records on the requests topic.
func (e *env) requestRecords(t *testing.T) int64 {
	t.Helper()
	offs, err := kadm.NewClient(e.kafka).ListEndOffsets(context.Background(), e.topics.Requests)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func (e *env) createWith(t *testing.T, key, idem, body string) answer {
	t.Helper()
	return e.callWith(t, key, "POST", e.srv.URL+"/v1/disbursements", body, func(r *http.Request) { r.Header.Set("Idempotency-Key", idem) })
}

func payoutBody(ref string, amount string) string {
	return `{"reference_id":"` + ref + `","bank_code":"bca","account_number":"1234567890","amount":` + amount + `}`
}

func TestMakerChecker(t *testing.T) {
	e := newEnv(t)
	recv := "https://merchant.example.com/cb"
	if a := e.call(t, e.key, "PATCH", "/v1/settings", `{"callback_url":"`+recv+`"}`); a.status != 200 {
		t.Fatalf("callback url: %d %s", a.status, a.raw)
	}
	if a := e.call(t, e.key, "PUT", "/v1/approvals/policy", `{"payout_amount":1000000,"batch_items":3,"expires_after_seconds":3600}`); a.status != 200 {
		t.Fatalf("policy: %d %s", a.status, a.raw)
	}
	checker, _ := e.issueKey(t, "finance lead", "batches:approve", "payouts:read")
	maker, _ := e.issueKey(t, "payroll job", "payouts:create", "payouts:read")
	published := e.requestRecords(t)

	// Over the threshold: held, nothing published or debited.
	big := e.createWith(t, maker, "mc-1", payoutBody("mc-1", "2000000"))
	if big.status != 202 || big.body["status"] != "AWAITING_APPROVAL" || big.body["hold"].(map[string]any)["approval_status"] != "PENDING" {
		t.Fatalf("held payout: %d %s", big.status, big.raw)
	}
	small := e.createWith(t, maker, "mc-2", payoutBody("mc-2", "500000"))
	if small.status != 202 || small.body["status"] != "PENDING" {
		t.Fatalf("payout under the threshold: %d %s", small.status, small.raw)
	}
	if got := e.requestRecords(t) - published; got != 1 {
		t.Fatalf("%d records published, want only the payout under the threshold", got)
	}
	if replay := e.createWith(t, maker, "mc-1", payoutBody("mc-1", "2000000")); replay.status != 202 || replay.body["id"] != big.body["id"] ||
		replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay of a held payout: %d %s", replay.status, replay.raw)
	}
	id := big.body["id"].(string)

	// The maker may not check its own payout; a key without the scope may not either.
	if a := e.call(t, maker, "POST", "/v1/disbursements/"+id+"/approve", ""); a.status != 403 || a.code() != "INSUFFICIENT_SCOPE" {
		t.Fatalf("maker without the scope: %d %s", a.status, a.raw)
	}
	selfMade := e.createWith(t, e.key, "mc-self", payoutBody("mc-self", "3000000"))
	if a := e.call(t, e.key, "POST", "/v1/disbursements/"+selfMade.body["id"].(string)+"/approve", ""); a.status != 403 || a.code() != "MAKER_CANNOT_APPROVE" {
		t.Fatalf("full key approves its own payout: %d %s", a.status, a.raw)
	}

	// The queue shows what awaits a decision.
	q := e.call(t, checker, "GET", "/v1/approvals", "")
	if q.status != 200 || len(q.body["data"].([]any)) != 2 {
		t.Fatalf("queue: %d %s", q.status, q.raw)
	}

	// The checker approves: PENDING, published once.
	before := e.requestRecords(t)
	a := e.callWith(t, checker, "POST", e.srv.URL+"/v1/disbursements/"+id+"/approve", `{"note":"payroll December"}`, nil)
	if a.status != 200 || a.body["approval_status"] != "APPROVED" || a.body["decision_note"] != "payroll December" {
		t.Fatalf("approve: %d %s", a.status, a.raw)
	}
	if got := e.requestRecords(t) - before; got != 1 {
		t.Fatalf("the approval published %d records", got)
	}
	if g := e.call(t, checker, "GET", "/v1/disbursements/"+id, ""); g.body["status"] != "PENDING" {
		t.Fatalf("approved payout: %s", g.raw)
	}
	if a := e.call(t, checker, "POST", "/v1/disbursements/"+id+"/approve", ""); a.status != 409 || a.code() != "NOT_AWAITING_APPROVAL" {
		t.Fatalf("approve twice: %d %s", a.status, a.raw)
	}

	// Rejected: FAILED without a debit. Cancelled while waiting: CANCELLED,
	// and no approval afterwards.
	if a := e.call(t, checker, "POST", "/v1/disbursements/"+selfMade.body["id"].(string)+"/reject", ""); a.status != 200 || a.body["approval_status"] != "REJECTED" {
		t.Fatalf("reject: %d %s", a.status, a.raw)
	}
	if g := e.call(t, e.key, "GET", "/v1/disbursements/"+selfMade.body["id"].(string), ""); g.body["status"] != "FAILED" || g.body["failure_code"] != "APPROVAL_REJECTED" {
		t.Fatalf("rejected payout: %s", g.raw)
	}
	third := e.createWith(t, maker, "mc-3", payoutBody("mc-3", "4000000"))
	if c := e.call(t, maker, "POST", "/v1/disbursements/"+third.body["id"].(string)+"/cancel", ""); c.status != 200 || c.body["status"] != "CANCELLED" {
		t.Fatalf("cancel a held payout: %d %s", c.status, c.raw)
	}
	if a := e.call(t, checker, "POST", "/v1/disbursements/"+third.body["id"].(string)+"/approve", ""); a.status != 409 {
		t.Fatalf("approve a cancelled payout: %d %s", a.status, a.raw)
	}

	// A batch of 3 items waits as a whole; approving it publishes its items.
	b := e.callWith(t, maker, "POST", e.srv.URL+"/v1/batches", `{"reference_id":"mcb","items":[`+
		payoutBody("mcb-1", "10000")+`,`+payoutBody("mcb-2", "20000")+`,`+payoutBody("mcb-3", "30000")+`]}`,
		func(r *http.Request) { r.Header.Set("Idempotency-Key", "mcb") })
	if b.status != 202 || b.body["hold"].(map[string]any)["approval_status"] != "PENDING" {
		t.Fatalf("held batch: %d %s", b.status, b.raw)
	}
	bid := b.body["id"].(string)
	if g := e.call(t, checker, "GET", "/v1/batches/"+bid, ""); g.body["status"] != "ACCEPTED" || g.body["counts"].(map[string]any)["AWAITING_APPROVAL"] == nil {
		t.Fatalf("held batch progress: %s", g.raw)
	}
	before = e.requestRecords(t)
	if a := e.call(t, checker, "POST", "/v1/batches/"+bid+"/approve", ""); a.status != 200 {
		t.Fatalf("approve batch: %d %s", a.status, a.raw)
	}
	if got := e.requestRecords(t) - before; got != 3 {
		t.Fatalf("the batch approval published %d records", got)
	}

	// An approval not given in time expires: the payout fails, announced.
	late := e.createWith(t, maker, "mc-late", payoutBody("mc-late", "5000000"))
	e.clock.Advance(2 * time.Hour)
	if a := e.call(t, checker, "POST", "/v1/disbursements/"+late.body["id"].(string)+"/approve", ""); a.status != 409 || a.code() != "APPROVAL_EXPIRED" {
		t.Fatalf("late approval: %d %s", a.status, a.raw)
	}
	if g := e.call(t, e.key, "GET", "/v1/disbursements/"+late.body["id"].(string), ""); g.body["failure_code"] != "APPROVAL_EXPIRED" {
		t.Fatalf("expired payout: %s", g.raw)
	}
	for typ, want := range map[string]int{hold.TypeApprovalRequested: 5, hold.TypeApprovalApproved: 2, hold.TypeApprovalRejected: 1, hold.TypeApprovalExpired: 1} {
		if n := fixture.Count(t, e.pool, `SELECT count(*) FROM callbacks WHERE type = $1`, typ); n != want {
			t.Errorf("%d %s callbacks, want %d", n, typ, want)
		}
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM journal_entries WHERE kind <> 'deposit'`); n != 0 {
		t.Fatalf("%d journal entries without a ledger stage running", n)
	}
	fixture.Audit(t, e.pool)
}

func TestScheduledPayouts(t *testing.T) {
	e := newEnv(t)
	at := e.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	published := e.requestRecords(t)
	s := e.createWith(t, e.key, "sc-1", `{"reference_id":"sc-1","bank_code":"bca","account_number":"1234567890","amount":150000,"scheduled_at":"`+at+`"}`)
	if s.status != 202 || s.body["status"] != "SCHEDULED" || s.body["hold"].(map[string]any)["scheduled_at"] == nil {
		t.Fatalf("scheduled payout: %d %s", s.status, s.raw)
	}
	for name, when := range map[string]string{
		"in the past":         e.clock.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
		"over 30 days ahead":  e.clock.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339),
		"not a time":          "tomorrow",
		"a date without time": "2026-12-24",
	} {
		a := e.createWith(t, e.key, "sc-bad", `{"reference_id":"sc-bad","bank_code":"bca","account_number":"1234567890","amount":150000,"scheduled_at":"`+when+`"}`)
		if a.status != 422 || !containsAll(a.raw, `"field":"scheduled_at"`) {
			t.Errorf("%s: %d %s", name, a.status, a.raw)
		}
	}
	other := e.clock.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	if a := e.createWith(t, e.key, "sc-1", `{"reference_id":"sc-1","bank_code":"bca","account_number":"1234567890","amount":150000,"scheduled_at":"`+other+`"}`); a.status != 409 || a.code() != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("same key, another time: %d %s", a.status, a.raw)
	}
	if a := e.createWith(t, e.key, "sc-1", `{"reference_id":"sc-1","bank_code":"bca","account_number":"1234567890","amount":150000}`); a.status != 409 {
		t.Fatalf("same key, no time: %d %s", a.status, a.raw)
	}
	list := e.call(t, e.key, "GET", "/v1/disbursements?status=SCHEDULED", "")
	if list.status != 200 || len(list.body["data"].([]any)) != 1 {
		t.Fatalf("list SCHEDULED: %d %s", list.status, list.raw)
	}
	// A scheduled CSV batch.
	csv := "reference_id,bank_code,account_number,amount\nscb-1,bca,1234567890,10000\nscb-2,bni,1234567890,20000\n"
	b := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/batches?reference_id=scb&scheduled_at="+at, csv, func(r *http.Request) {
		r.Header.Set("Content-Type", "text/csv")
		r.Header.Set("Idempotency-Key", "scb")
	})
	if b.status != 202 || b.body["hold"].(map[string]any)["scheduled_at"] == nil {
		t.Fatalf("scheduled batch: %d %s", b.status, b.raw)
	}
	if got := e.requestRecords(t) - published; got != 0 {
		t.Fatalf("%d records published for scheduled payouts before their time", got)
	}

	// The worker releases them when due, and only then. A worker whose
	// publish fails (a crash after the release committed) leaves them
	// PENDING; the next worker (after the restart) publishes them.
	failing := &hold.Worker{Store: hold.NewStore(e.pool), Log: e.s.Log, Now: e.clock.Now,
		Publish: func(context.Context, []events.Request) error { return errors.New("process killed") }}
	if err := failing.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements WHERE status = 'SCHEDULED'`); n != 3 {
		t.Fatalf("%d SCHEDULED before their time, want 3", n)
	}
	e.clock.Advance(time.Hour + time.Second)
	if err := failing.Step(context.Background()); err == nil {
		t.Fatal("the failing publish was not reported")
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements WHERE status = 'PENDING'`); n == 0 {
		t.Fatal("nothing released when due")
	}
	restarted := &hold.Worker{Store: hold.NewStore(e.pool), Log: e.s.Log, Now: e.clock.Now, Publish: hold.Publisher(e.kafka, e.topics.Requests)}
	if err := restarted.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute) // past RepublishAfter: the first release's payouts go out again
	if err := restarted.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements WHERE status = 'PENDING'`); n != 3 {
		t.Fatalf("%d PENDING after the restart, want 3", n)
	}
	if got := e.requestRecords(t) - published; got < 3 {
		t.Fatalf("%d records published after the restart, want the 3 due payouts", got)
	}
	fixture.Audit(t, e.pool)
}
