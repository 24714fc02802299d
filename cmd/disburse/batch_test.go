package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// postBatch sends a CSV batch and decodes the answer.
func postBatch(t testing.TB, base, key, query, idemKey, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/batches?"+query, strings.NewReader(body))
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Idempotency-Key", idemKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := jsonDecode(resp.Body, &out); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header
}

// TestBatchOf10000 sends a 10,000-item CSV batch through the pipeline on the
// real Kafka and Postgres, then sends it again under the same and under a
// new batch key: nothing is paid twice.
func TestBatchOf10000(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	const n, invalidEvery = 10_000, 50
	var csv strings.Builder
	csv.WriteString("reference_id,bank_code,account_number,amount,description\n")
	var wantPaid, wantFees int64
	wantFailed := 0
	for i := 0; i < n; i++ {
		acct := fmt.Sprintf("12%07d5", i) // never a magic suffix
		if i%invalidEvery == 0 {
			acct = fmt.Sprintf("77%04d0000", i%10000)
			wantFailed++
		} else {
			wantPaid += int64(10_000 + i)
			wantFees += 2500
		}
		fmt.Fprintf(&csv, "item-%d,%s,%s,%d,\"payout %d, march\"\n", i, []string{"bca", "bni", "bri", "mandiri"}[i%4], acct, 10_000+i, i)
	}
	_, before, _ := call(t, p.api.URL, p.key, "GET", "/v1/balance", nil, nil)

	start := time.Now()
	code, acc, _ := postBatch(t, p.api.URL, p.key, "reference_id=march-payroll", "batch-1", csv.String())
	if code != 202 || acc["item_count"] != float64(n) {
		t.Fatalf("create: %d %v", code, acc["error"])
	}
	accepted := time.Since(start)
	id := acc["id"].(string)

	var b map[string]any
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, b, _ = call(t, p.api.URL, p.key, "GET", "/v1/batches/"+id, nil, nil)
		if b["status"] == "COMPLETED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not completed in time: %v", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("10,000 items: accepted in %s, all terminal in %s", accepted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	counts := b["counts"].(map[string]any)
	completed := counts["COMPLETED"].(map[string]any)
	failed := counts["FAILED"].(map[string]any)
	if int(completed["count"].(float64)) != n-wantFailed || int64(completed["amount"].(float64)) != wantPaid ||
		int(failed["count"].(float64)) != wantFailed || b["failures"].(map[string]any)["INVALID_ACCOUNT"] != float64(wantFailed) {
		t.Fatalf("counts %v failures %v; want %d completed (%d) and %d failed", counts, b["failures"], n-wantFailed, wantPaid, wantFailed)
	}
	_, after, _ := call(t, p.api.URL, p.key, "GET", "/v1/balance", nil, nil)
	if got, want := mustNumber(t, after, "available"), mustNumber(t, before, "available")-wantPaid-wantFees; got != want {
		t.Fatalf("available %d, want %d", got, want)
	}

	// The same batch again: the same answer. Under a new key: every item a
	// duplicate, nothing paid.
	code, again, h := postBatch(t, p.api.URL, p.key, "reference_id=march-payroll", "batch-1", csv.String())
	if code != 202 || again["id"] != id || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v", code, again["error"])
	}
	code, second, _ := postBatch(t, p.api.URL, p.key, "reference_id=march-payroll-again", "batch-2", csv.String())
	if code != 202 || second["item_count"] != float64(0) || second["duplicate_count"] != float64(n) || second["status"] != "COMPLETED" {
		t.Fatalf("resubmission: %d item_count=%v duplicate_count=%v status=%v", code, second["item_count"], second["duplicate_count"], second["status"])
	}
	// Page through the failed items.
	seen, cursor := 0, ""
	for {
		_, page, _ := call(t, p.api.URL, p.key, "GET", "/v1/batches/"+id+"/items?status=FAILED&limit=37&cursor="+cursor, nil, nil)
		seen += len(page["data"].([]any))
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if seen != wantFailed {
		t.Fatalf("paged %d failed items, want %d", seen, wantFailed)
	}
	time.Sleep(300 * time.Millisecond) // let the last status events land
	if dup := p.bank.Duplicates(); len(dup) != 0 {
		t.Fatalf("the bank saw %d duplicate sends", len(dup))
	}
	if got := fixture.Count(t, p.pool, `SELECT count(*) FROM journal_entries WHERE kind = 'debit'`); got != n {
		t.Fatalf("%d debits for %d items", got, n)
	}
	if endOffsets(t, p.kafka, p.topics.Batches) < 1 {
		t.Fatal("no batch.completed event published")
	}
	fixture.Audit(t, p.pool)
}
