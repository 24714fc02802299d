package main

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/processor/dispatch"
)

func errorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestAccountInquiryAndHolderName: inquiry answers per magic account; a
// payout whose holder name does not match is refused before anything is
// stored or debited; bad input is refused with its field.
func TestAccountInquiryAndHolderName(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	base, key := p.api.URL, p.key
	inq := func(bank, acct string) (int, map[string]any) {
		code, d, _ := call(t, base, key, "POST", "/v1/account-inquiry", nil, map[string]any{"bank_code": bank, "account_number": acct})
		return code, d
	}
	code, ok := inq("bca", "1234567890")
	name, _ := ok["account_holder_name"].(string)
	if code != 200 || ok["status"] != "VALID" || name == "" {
		t.Fatalf("inquiry: %d %v", code, ok)
	}
	for acct, want := range map[string]string{"1234560000": "INVALID", "1234569999": "CLOSED"} {
		if code, d := inq("bca", acct); code != 200 || d["status"] != want {
			t.Errorf("inquiry %s: %d %v, want %s", acct, code, d, want)
		}
	}
	if code, d := inq("ovo", "+62 812-3456-7890"); code != 200 || d["status"] != "VALID" {
		t.Errorf("e-wallet inquiry: %d %v", code, d)
	}
	for _, bad := range [][2]string{{"nope", "1234567890"}, {"bca", "12345"}, {"ovo", "0212345678"}} {
		if code, d := inq(bad[0], bad[1]); code != 422 || errorCode(d) != "VALIDATION_ERROR" {
			t.Errorf("inquiry %v: %d %v, want 422", bad, code, d)
		}
	}

	_, before, _ := call(t, base, key, "GET", "/v1/balance", nil, nil)
	body := func(ref, holder string) map[string]any {
		b := payoutBody(ref, "1234567890", 100_000)
		b["account_holder_name"] = holder
		return b
	}
	code, d, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "nm-1"}, body("nm-1", "Someone Else Entirely"))
	if code != 422 || errorCode(d) != "NAME_MISMATCH" {
		t.Fatalf("mismatched holder: %d %v", code, d)
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements`); n != 0 {
		t.Errorf("a refused payout left %d rows", n)
	}
	// The bank's own name, in another case and with an honorific, passes.
	code, d, _ = call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "nm-2"}, body("nm-2", "Bpk. "+name))
	if code != 202 {
		t.Fatalf("matching holder: %d %v", code, d)
	}
	waitStatus(t, base, key, d["id"].(string), "COMPLETED")
	_, after, _ := call(t, base, key, "GET", "/v1/balance", nil, nil)
	if got, want := mustNumber(t, after, "available"), mustNumber(t, before, "available")-100_000-2500; got != want {
		t.Errorf("available %d, want %d (only the matching payout debited)", got, want)
	}
	// Bad input at the API: field and reason, nothing published.
	bad := []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"reference_id": "b1", "bank_code": "bca", "account_number": "12345678901", "amount": 50_000}, "account_number"},
		{map[string]any{"reference_id": "b2", "bank_code": "bca", "account_number": "12345abcde", "amount": 50_000}, "account_number"},
		{map[string]any{"reference_id": "b3", "bank_code": "xyz", "account_number": "1234567890", "amount": 50_000}, "bank_code"},
		{map[string]any{"reference_id": "b4", "bank_code": "gopay", "account_number": "+1 415 555 0100", "amount": 50_000}, "account_number"},
		{map[string]any{"reference_id": "b5", "bank_code": "ovo", "account_number": "081234567890", "amount": 25_000_000}, "amount"},
		{map[string]any{"reference_id": "b6", "bank_code": "bca", "account_number": "1234567890", "amount": 5_000}, "amount"},
	}
	requests := endOffsets(t, p.kafka, p.topics.Requests)
	for i, b := range bad {
		code, d, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": fmt.Sprintf("bad-%d", i)}, b.body)
		fields, _ := d["error"].(map[string]any)["fields"].([]any)
		if code != 422 || len(fields) == 0 || fields[0].(map[string]any)["field"] != b.field {
			t.Errorf("%v: %d %v, want 422 on %s", b.body, code, d, b.field)
		}
	}
	if n := endOffsets(t, p.kafka, p.topics.Requests); n != requests {
		t.Errorf("rejected requests were published (%d -> %d records)", requests, n)
	}
	fixture.Audit(t, p.pool)
}

// TestMaintenanceWindowParks: payouts to a bank in its maintenance window
// wait (parked), are not sent, and go out when the window ends; GET
// /v1/banks shows the bank unavailable meanwhile.
func TestMaintenanceWindowParks(t *testing.T) {
	var inWindow atomic.Bool
	inWindow.Store(true)
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) {
		prof := c.profiles["bri"]
		prof.Windows = []connectors.Window{{Kind: connectors.WindowMaintenance, Start: "23:30", End: "00:30"}}
		c.profiles["bri"] = prof
		c.now = func() time.Time {
			if inWindow.Load() {
				return time.Date(2025, 3, 4, 23, 45, 0, 0, connectors.Jakarta)
			}
			return time.Now()
		}
	})
	ids := []string{
		submit(t, p, "mw-1", "bri", "1234567890", 50_000),
		submit(t, p, "mw-2", "linkaja", "081234567890", 50_000), // an e-wallet hosted by bri
	}
	other := submit(t, p, "mw-3", "bca", "1234567890", 50_000)
	waitStatus(t, p.api.URL, p.key, other, "COMPLETED")
	time.Sleep(time.Second)
	for _, id := range ids {
		if n := p.bank.Received(id); n != 0 {
			t.Fatalf("payout %s reached bri during its maintenance window", id)
		}
		_, d, _ := call(t, p.api.URL, p.key, "GET", "/v1/disbursements/"+id, nil, nil)
		if d["status"] != "PROCESSING" {
			t.Fatalf("payout during the window: %v", d)
		}
	}
	if n := endOffsets(t, p.kafka, p.topics.DispatchRetry); n == 0 {
		t.Errorf("nothing parked during the window")
	}
	_, banks, _ := call(t, p.api.URL, p.key, "GET", "/v1/banks", nil, nil)
	for _, b := range banks["data"].([]any) {
		b := b.(map[string]any)
		wantUp := b["code"] != "bri" && b["code"] != "linkaja"
		if b["available"] != wantUp {
			t.Errorf("GET /v1/banks: %v, want available %v", b, wantUp)
		}
	}
	inWindow.Store(false)
	for _, id := range ids {
		waitStatus(t, p.api.URL, p.key, id, "COMPLETED")
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}

// TestUnknownOutcomeGoesToReconciler: a transfer whose answer hangs and
// that stays PROCESSING at the bank beyond the lane's window is left to the
// reconciler, listed for operators meanwhile, and settled once the bank
// decides; it is sent once.
func TestUnknownOutcomeGoesToReconciler(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) {
		c.banks.CompleteDelay = 6 * time.Second
		c.stage = func(st *dispatch.Stage) {
			st.UnknownWindow = 500 * time.Millisecond
			st.Reconcile.AlertAfter = time.Second
		}
	})
	id := submit(t, p, "unk-1", "bca", "1234562222", 50_000)
	other := submit(t, p, "unk-2", "bca", "1234567890", 50_000)
	waitStatus(t, p.api.URL, p.key, other, "COMPLETED")
	listed := false
	deadline := time.Now().Add(5 * time.Second)
	for !listed && time.Now().Before(deadline) {
		code, d, _ := call(t, p.operator.URL, "", "GET", "/operator/v1/payouts/unresolved?older_than=1s", map[string]string{"Authorization": "Bearer " + testOperatorToken}, nil)
		if code != 200 {
			t.Fatalf("unresolved list: %d %v", code, d)
		}
		for _, u := range d["data"].([]any) {
			listed = listed || u.(map[string]any)["id"] == id
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !listed {
		t.Errorf("the unknown payout was never listed for operators")
	}
	waitStatus(t, p.api.URL, p.key, id, "COMPLETED")
	if n := p.bank.Received(id); n != 1 {
		t.Errorf("the bank received it %d times, want 1", n)
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}

// TestBatchItemsHolderNameChecked: a batch item whose account_holder_name
// is not the bank's name for the account fails NAME_MISMATCH with its debit
// returned and never reaches the bank; a matching item and an item without
// a name are paid.
func TestBatchItemsHolderNameChecked(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	code, inq, _ := call(t, p.api.URL, p.key, "POST", "/v1/account-inquiry", nil, map[string]any{"bank_code": "bca", "account_number": "1234567895"})
	name, _ := inq["account_holder_name"].(string)
	if code != 200 || name == "" {
		t.Fatalf("inquiry: %d %v", code, inq)
	}
	csv := "reference_id,bank_code,account_number,amount,account_holder_name\n" +
		"hn-ok,bca,1234567895,20000," + name + "\n" +
		"hn-bad,bca,1234567895,20000,Somebody Else Entirely\n" +
		"hn-none,bca,1234567895,20000,\n"
	code, acc, _ := postBatch(t, p.api.URL, p.key, "reference_id=hn", "hn", csv)
	if code != 202 {
		t.Fatalf("batch: %d %v", code, acc)
	}
	waitAll(t, p, 60*time.Second)
	want := map[string]string{"hn-ok": "COMPLETED", "hn-bad": "FAILED/NAME_MISMATCH", "hn-none": "COMPLETED"}
	for ref, st := range want {
		var status, failure, id string
		if err := p.pool.QueryRow(t.Context(), `SELECT id, status, failure_code FROM disbursements WHERE reference_id = $1`, ref).Scan(&id, &status, &failure); err != nil {
			t.Fatal(err)
		}
		got := status
		if failure != "" {
			got += "/" + failure
		}
		if got != st {
			t.Errorf("%s: %s, want %s", ref, got, st)
		}
		if ref == "hn-bad" && p.bank.Received(id) != 0 {
			t.Errorf("the mismatched item reached its bank")
		}
	}
	fixture.Audit(t, p.pool)
}
