package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// slowBanks take ~20 ms a call, so a 3,000-item batch is still being
// debited and sent seconds after its first item is paid.
func slowBanks(c *pipelineConfig) {
	c.banks.Latency = banksim.Latency{Median: 20 * time.Millisecond, P99: 60 * time.Millisecond}
}

// TestPauseArrivingMidBatch pauses an environment's payouts while a batch
// is being debited and sent, on the real Kafka and Postgres: from the pause
// on no payout is debited and none is sent (dispatch sees the pause within
// its 1 s refresh), the rest wait debited and parked, a payout accepted
// meanwhile waits PENDING (held); after the resume every one is paid
// exactly once and the books balance.
func TestPauseArrivingMidBatch(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), slowBanks)
	const items = 3000
	var csv strings.Builder
	csv.WriteString("reference_id,bank_code,account_number,amount\n")
	for i := range items {
		fmt.Fprintf(&csv, "pz-%d,bca,1234567890,10000\n", i)
	}
	code, acc, _ := postBatch(t, p.api.URL, p.key, "reference_id=pz", "pz", csv.String())
	if code != 202 {
		t.Fatalf("batch: %d %v", code, acc)
	}
	batchID := acc["id"].(string)
	for deadline := time.Now().Add(60 * time.Second); fixture.Count(t, p.pool,
		`SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status = 'COMPLETED'`, batchID) < 20; {
		if time.Now().After(deadline) {
			t.Fatal("no batch item was paid within 60s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, ctl, _ := call(t, p.api.URL, p.key, "POST", "/v1/controls/pause", nil, map[string]string{"reason": "wrong file"})
	if code != 200 || ctl["paused"] != true {
		t.Fatalf("pause: %d %v", code, ctl)
	}
	pausedAt := time.Now()

	// Sends in flight at the pause finish; dispatch's view refreshes within
	// a second. After that nothing is debited and nothing is sent.
	time.Sleep(2 * time.Second)
	debited := func() int {
		return fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND debited_at IS NOT NULL`, batchID)
	}
	var ids []string
	rows, err := p.pool.Query(t.Context(), `SELECT id FROM disbursements WHERE batch_id = $1`, batchID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	sent := func() int { // transfers the bank received
		n := 0
		for _, id := range ids {
			n += p.bank.Received(id)
		}
		return n
	}
	d1, s1 := debited(), sent()
	time.Sleep(3 * time.Second)
	d2, s2 := debited(), sent()
	if d2 != d1 || s2 != s1 {
		t.Fatalf("while paused: debited %d -> %d, sent %d -> %d", d1, d2, s1, s2)
	}
	late := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND debited_at > $2`, batchID, pausedAt.Add(time.Second))
	if late != 0 {
		t.Fatalf("%d payouts debited more than a second after the pause", late)
	}
	held := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status = 'PENDING'`, batchID)
	parked := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status = 'PROCESSING'`, batchID)
	completed := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status = 'COMPLETED'`, batchID)
	t.Logf("at the pause: %d completed, %d debited and parked, %d held PENDING", completed, parked, held)
	if held+parked == 0 {
		t.Fatal("the whole batch was sent before the pause: nothing raced")
	}

	// Payouts accepted while paused are held PENDING, not debited, and a
	// pause again changes nothing.
	heldID := submit(t, p, "pz-while-paused", "bni", "1234567890", 25_000)
	if code, _, _ := call(t, p.api.URL, p.key, "POST", "/v1/controls/pause", nil, nil); code != 200 {
		t.Fatalf("pause again: %d", code)
	}
	time.Sleep(2 * time.Second)
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE id = $1 AND status = 'PENDING' AND debited_at IS NULL`, heldID); n != 1 {
		t.Fatalf("a payout accepted while paused was not held PENDING")
	}

	code, ctl, _ = call(t, p.api.URL, p.key, "POST", "/v1/controls/resume", nil, nil)
	if code != 200 || ctl["paused"] != false {
		t.Fatalf("resume: %d %v", code, ctl)
	}
	waitAll(t, p, 120*time.Second)
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status = 'COMPLETED'`, batchID); n != items {
		t.Fatalf("%d of %d items completed after the resume", n, items)
	}
	for _, id := range append(ids, heldID) {
		if n := p.bank.Received(id); n != 1 {
			t.Fatalf("%s received by its bank %d times", id, n)
		}
	}
	fixture.Audit(t, p.pool)
}

// TestVelocityLimits: payouts over the environment's limits fail with
// VELOCITY_LIMIT_EXCEEDED before any debit, in the order they were
// accepted, and the merchant is told; those within are paid.
func TestVelocityLimits(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer recv.Close()
	if code, s, _ := call(t, p.api.URL, p.key, "PATCH", "/v1/settings", nil, map[string]string{"callback_url": recv.URL + "/cb"}); code != 200 {
		t.Fatalf("set callback_url: %d %v", code, s)
	}
	code, ctl, _ := call(t, p.api.URL, p.key, "PUT", "/v1/controls/velocity", nil, map[string]int64{"max_count_per_hour": 5, "max_amount_per_day": 1_000_000})
	if code != 200 {
		t.Fatalf("set limits: %d %v", code, ctl)
	}
	var ids []string
	for i := range 4 {
		ids = append(ids, submit(t, p, fmt.Sprintf("v-%d", i), "bca", "1234567890", 100_000))
	}
	waitAll(t, p, 30*time.Second)
	// 400,000 paid: one of 700,000 would pass the count but not the amount.
	ids = append(ids, submit(t, p, "v-big", "bni", "1234567890", 700_000))
	waitAll(t, p, 30*time.Second)
	ids = append(ids, submit(t, p, "v-4", "bca", "1234567890", 100_000), submit(t, p, "v-5", "bca", "1234567890", 100_000))
	waitAll(t, p, 30*time.Second)
	want := []string{"COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "VELOCITY_LIMIT_EXCEEDED", "COMPLETED", "VELOCITY_LIMIT_EXCEEDED"}
	for i, id := range ids {
		var status, failure string
		var debited bool
		if err := p.pool.QueryRow(t.Context(), `SELECT status, failure_code, debited_at IS NOT NULL FROM disbursements WHERE id = $1`, id).Scan(&status, &failure, &debited); err != nil {
			t.Fatal(err)
		}
		got := status
		if status == "FAILED" {
			got = failure
			if debited {
				t.Errorf("%s failed by a velocity limit but was debited", id)
			}
		}
		if got != want[i] {
			t.Errorf("payout %d (%s): %s, want %s", i, id, got, want[i])
		}
	}
	code, ctl, _ = call(t, p.api.URL, p.key, "GET", "/v1/controls", nil, nil)
	if usage := ctl["usage"].(map[string]any); code != 200 || usage["hour_count"] != 5.0 || usage["day_amount"] != 500_000.0 {
		t.Fatalf("controls: %d %v", code, ctl)
	}
	for deadline := time.Now().Add(30 * time.Second); fixture.Count(t, p.pool,
		`SELECT count(*) FROM callbacks c JOIN disbursements d ON d.id = c.subject_id WHERE c.type = 'disbursement.failed' AND d.failure_code = 'VELOCITY_LIMIT_EXCEEDED'`) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("no disbursement.failed callback for the payouts over the limits")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fixture.Audit(t, p.pool)
}
