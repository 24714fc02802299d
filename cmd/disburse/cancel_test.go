package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// TestCancelRacingSendsNeverBoth cancels a batch and single payouts through
// the API while the pipeline is sending them, on the real Kafka and
// Postgres: every payout ends either CANCELLED, never received by its bank
// and with its money back, or paid by its bank once and not cancelled. The
// batch cancel's counts add up, the merchant is told of every cancel, and
// the audit holds.
func TestCancelRacingSendsNeverBoth(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer recv.Close()
	if code, s, _ := call(t, p.api.URL, p.key, "PATCH", "/v1/settings", nil, map[string]string{"callback_url": recv.URL + "/cb"}); code != 200 {
		t.Fatalf("set callback_url: %d %v", code, s)
	}
	// More items than one bank's lane holds (512 claimed at a time): the
	// rest wait parked, not yet handed to the bank, and can be cancelled.
	const items, singles = 3000, 60
	var csv strings.Builder
	csv.WriteString("reference_id,bank_code,account_number,amount\n")
	for i := range items {
		fmt.Fprintf(&csv, "cx-%d,bca,1234567890,10000\n", i)
	}
	code, acc, _ := postBatch(t, p.api.URL, p.key, "reference_id=cx", "cx", csv.String())
	if code != 202 {
		t.Fatalf("batch: %d %v", code, acc)
	}
	batchID := acc["id"].(string)
	// Once the first items are paid: the rest is being debited and sent
	// while the cancel runs.
	for deadline := time.Now().Add(60 * time.Second); fixture.Count(t, p.pool,
		`SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status = 'COMPLETED'`, batchID) < 20; {
		if time.Now().After(deadline) {
			t.Fatal("no batch item was paid within 60s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, cancelled, _ := call(t, p.api.URL, p.key, "POST", "/v1/batches/"+batchID+"/cancel", nil, nil)
	if code != 200 {
		t.Fatalf("batch cancel: %d %v", code, cancelled)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	single := map[string]int{} // id -> cancel answer
	for i := range singles {
		id := submit(t, p, fmt.Sprintf("cs-%d", i), "bca", "1234567890", 10_000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i%6) * 15 * time.Millisecond) // some before the debit, some after
			code, body, _ := call(t, p.api.URL, p.key, "POST", "/v1/disbursements/"+id+"/cancel", nil, nil)
			if code != 200 && code != 409 {
				t.Errorf("cancel %s: %d %v", id, code, body)
			}
			mu.Lock()
			single[id] = code
			mu.Unlock()
		}()
	}
	wg.Wait()
	waitAll(t, p, 90*time.Second)

	nCancelled := int(cancelled["cancelled"].(float64))
	nKept := int(cancelled["not_cancelled"].(float64))
	if nCancelled+nKept != items {
		t.Fatalf("batch cancel counted %d cancelled and %d not, for %d items", nCancelled, nKept, items)
	}
	if got := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND status = 'CANCELLED'`, batchID); got != nCancelled {
		t.Fatalf("%d batch items CANCELLED; the cancel said %d", got, nCancelled)
	}
	rows, err := p.pool.Query(t.Context(), `SELECT id, status FROM disbursements WHERE merchant_id = 'm1'`)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		status[id] = st
	}
	rows.Close()
	nSingleCancelled := 0
	for id, st := range status {
		received := p.bank.Received(id)
		switch {
		case st == "CANCELLED" && received != 0:
			t.Fatalf("%s is CANCELLED but its bank received it %d times", id, received)
		case st == "COMPLETED" && received != 1:
			t.Fatalf("%s is COMPLETED but its bank received it %d times", id, received)
		case st != "CANCELLED" && st != "COMPLETED":
			t.Fatalf("%s ended %s", id, st)
		}
		if c, ok := single[id]; ok {
			if (c == 200) != (st == "CANCELLED") {
				t.Fatalf("single %s: cancel answered %d, status %s", id, c, st)
			}
			if st == "CANCELLED" {
				nSingleCancelled++
			}
		}
	}
	t.Logf("batch: %d cancelled, %d already at their banks; singles: %d of %d cancelled", nCancelled, nKept, nSingleCancelled, singles)
	if nKept == 0 {
		t.Fatal("the batch cancel came before any item was paid: nothing raced")
	}
	if nCancelled == 0 {
		t.Fatal("every item was at its bank before the cancel: nothing was left to cancel")
	}
	// The merchant hears of every cancel.
	deadline := time.Now().Add(30 * time.Second)
	for fixture.Count(t, p.pool, `SELECT count(*) FROM callbacks WHERE type = 'disbursement.cancelled'`) < nCancelled+nSingleCancelled {
		if time.Now().After(deadline) {
			t.Fatalf("%d cancelled payouts but %d disbursement.cancelled callbacks", nCancelled+nSingleCancelled,
				fixture.Count(t, p.pool, `SELECT count(*) FROM callbacks WHERE type = 'disbursement.cancelled'`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	fixture.Audit(t, p.pool)
}
