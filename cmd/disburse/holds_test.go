package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// TestApprovalRacingCancel approves and cancels the same held payouts at
// once through the API while the pipeline runs, on the real Kafka and
// Postgres: every payout ends CANCELLED and never received by its bank, or
// COMPLETED and received once; nothing is debited for a cancelled one, and
// the books balance.
func TestApprovalRacingCancel(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	// Warm up: the stages' consumer groups have joined once a payout is paid.
	submit(t, p, "ar-warm", "bca", "1234567890", 10_000)
	waitAll(t, p, 60*time.Second)
	if code, b, _ := call(t, p.api.URL, p.key, "PUT", "/v1/approvals/policy", nil, map[string]int64{"payout_amount": 1}); code != 200 {
		t.Fatalf("policy: %d %v", code, b)
	}
	code, k, _ := call(t, p.api.URL, p.key, "POST", "/v1/keys", nil, map[string]any{"label": "checker", "scopes": []string{"batches:approve"}})
	if code != 201 {
		t.Fatalf("checker key: %d %v", code, k)
	}
	checker := k["secret_key"].(string)
	const n = 60
	ids := make([]string, n)
	for i := range n {
		ids[i] = submit(t, p, fmt.Sprintf("ar-%d", i), "bca", "1234567890", 10_000)
	}
	if got := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status = 'AWAITING_APPROVAL'`); got != n {
		t.Fatalf("%d of %d payouts awaiting approval", got, n)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	approved, cancelled := map[string]int{}, map[string]int{}
	for i, id := range ids {
		wg.Add(2)
		answered := make(chan struct{})
		go func() {
			defer wg.Done()
			defer close(answered)
			time.Sleep(time.Duration(i%3) * 5 * time.Millisecond)
			code, _, _ := call(t, p.api.URL, checker, "POST", "/v1/disbursements/"+id+"/approve", nil, nil)
			mu.Lock()
			approved[id] = code
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			if i%3 == 0 {
				// Well after the approval: the payout may be at its bank.
				<-answered
				time.Sleep(500 * time.Millisecond)
			} else {
				// Racing the approval: the payout is held, or just PENDING.
				time.Sleep(time.Duration(i%4) * 5 * time.Millisecond)
			}
			code, _, _ := call(t, p.api.URL, p.key, "POST", "/v1/disbursements/"+id+"/cancel", nil, nil)
			mu.Lock()
			cancelled[id] = code
			mu.Unlock()
		}()
	}
	wg.Wait()
	waitAll(t, p, 60*time.Second)
	nCancelled, nPaid := 0, 0
	for _, id := range ids {
		var status string
		var debits int
		if err := p.pool.QueryRow(t.Context(), `SELECT status, (SELECT count(*) FROM journal_entries WHERE disbursement_id = $1 AND kind = 'debit')
			FROM disbursements WHERE id = $1`, id).Scan(&status, &debits); err != nil {
			t.Fatal(err)
		}
		received := p.bank.Received(id)
		switch {
		case status == "CANCELLED" && received == 0 && cancelled[id] == 200:
			nCancelled++
		case status == "COMPLETED" && received == 1 && approved[id] == 200 && cancelled[id] == 409:
			nPaid++
		default:
			t.Fatalf("%s: %s, received %d times, %d debits; approve answered %d, cancel %d", id, status, received, debits, approved[id], cancelled[id])
		}
		if approved[id] != 200 && approved[id] != 409 {
			t.Fatalf("%s: approve answered %d", id, approved[id])
		}
	}
	codes := map[int]int{}
	for _, c := range approved {
		codes[c]++
	}
	t.Logf("%d cancelled, %d paid; approvals answered %v", nCancelled, nPaid, codes)
	if nCancelled == 0 || nPaid == 0 {
		t.Fatal("one side won every race: nothing raced")
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}

// TestScheduledBatchRunsAtItsTime schedules a batch a few seconds ahead
// through the API with the pipeline running: nothing is debited before its
// time, an item cancelled meanwhile is never paid, and at its time the
// balance is checked item by item (an item the balance no longer covers
// fails INSUFFICIENT_BALANCE) and the rest are paid once.
func TestScheduledBatchRunsAtItsTime(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	at := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	csv := "reference_id,bank_code,account_number,amount\nsb-1,bca,1234567890,100000\nsb-2,bni,1234567890,200000\nsb-3,bri,1234567890,300000\n"
	code, acc, _ := postBatch(t, p.api.URL, p.key, "reference_id=sb&scheduled_at="+at.Format(time.RFC3339), "sb", csv)
	if code != 202 {
		t.Fatalf("batch: %d %v", code, acc)
	}
	batchID := acc["id"].(string)
	// While it waits, the balance is spent elsewhere (a payout of all but
	// what sb-1 and sb-2 need) and sb-3 is cancelled.
	var sb3 string
	if err := p.pool.QueryRow(t.Context(), `SELECT id FROM disbursements WHERE reference_id = 'sb-3'`).Scan(&sb3); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := call(t, p.api.URL, p.key, "POST", "/v1/disbursements/"+sb3+"/cancel", nil, nil); code != 200 || b["status"] != "CANCELLED" {
		t.Fatalf("cancel a scheduled item: %d %v", code, b)
	}
	var available int64
	if err := p.pool.QueryRow(t.Context(), `SELECT balance FROM accounts WHERE merchant_id = 'm1' AND environment = 'sandbox' AND kind = 'available'`).Scan(&available); err != nil {
		t.Fatal(err)
	}
	fee := int64(2500) // api.DefaultSettings
	// Leave enough for sb-1 only.
	drain := available - (100_000 + fee) - fee - 10
	for i := 0; drain > 0; i++ {
		amt := min(drain, 90_000_000)
		submit(t, p, fmt.Sprintf("drain-%d", i), "mandiri", "1234567890", amt)
		drain -= amt + fee
	}
	waitOpen := func() int {
		return fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id IS NULL AND status IN ('PENDING', 'PROCESSING')`)
	}
	for deadline := time.Now().Add(60 * time.Second); waitOpen() > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the draining payouts did not finish")
		}
	}
	if time.Now().After(at) {
		t.Fatal("the setup took past the batch's time; the test proves nothing")
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND debited_at IS NOT NULL`, batchID); n != 0 {
		t.Fatalf("%d items debited before their time", n)
	}
	for deadline := time.Now().Add(60 * time.Second); fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements
		WHERE batch_id = $1 AND status IN ('SCHEDULED', 'PENDING', 'PROCESSING')`, batchID) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the scheduled batch did not end within 60s")
		}
	}
	status := map[string]string{}
	rows, err := p.pool.Query(t.Context(), `SELECT reference_id, status || coalesce('/' || nullif(failure_code, ''), ''), debited_at FROM disbursements WHERE batch_id = $1`, batchID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ref, st string
		var debited *time.Time
		if err := rows.Scan(&ref, &st, &debited); err != nil {
			t.Fatal(err)
		}
		status[ref] = st
		if debited != nil && debited.Before(at) {
			t.Errorf("%s debited at %s, before its time %s", ref, debited, at)
		}
	}
	rows.Close()
	want := map[string]string{"sb-1": "COMPLETED", "sb-2": "FAILED/INSUFFICIENT_BALANCE", "sb-3": "CANCELLED"}
	for ref, w := range want {
		if status[ref] != w {
			t.Errorf("%s: %s, want %s", ref, status[ref], w)
		}
	}
	if code, b, _ := call(t, p.api.URL, p.key, "GET", "/v1/batches/"+batchID, nil, nil); code != 200 || b["status"] != "COMPLETED" {
		t.Fatalf("batch after its time: %d %v", code, b)
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}
