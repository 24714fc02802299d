package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/disburse/disburse/audit"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

func TestPipelineOnKfake(t *testing.T) {
	p := startPipeline(t, kfakeBrokers(t), "t.")
	exercisePipeline(t, p)
}

func TestPipelineOnRealKafka(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	exercisePipeline(t, p)
}

// exercisePipeline sends payouts of each outcome and a repeated one, and
// checks statuses, the balance, the bank's own record and the audit.
func exercisePipeline(t *testing.T, p *pipeline) {
	base, key := p.api.URL, p.key
	_, before, _ := call(t, base, key, "GET", "/v1/balance", nil, nil)
	start := mustNumber(t, before, "available")

	code, d, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-ok"}, payoutBody("r-ok", "1234567890", 150_000))
	if code != 202 || d["status"] != "PENDING" {
		t.Fatalf("create: %d %v", code, d)
	}
	okID := d["id"].(string)

	// The same request again: same payout, no second debit.
	code, again, h := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-ok"}, payoutBody("r-ok", "1234567890", 150_000))
	if code != 202 || again["id"] != okID || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v %v", code, again, h)
	}
	// Same key, different body: 409.
	code, e, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-ok"}, payoutBody("r-ok", "1234567890", 150_001))
	if code != 409 || e["error"].(map[string]any)["code"] != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("reused key: %d %v", code, e)
	}
	// Same reference under another key: 409.
	code, e, _ = call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-other"}, payoutBody("r-ok", "1234567890", 150_000))
	if code != 409 || e["error"].(map[string]any)["code"] != "DUPLICATE_REFERENCE_ID" {
		t.Fatalf("duplicate reference: %d %v", code, e)
	}

	_, bad, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-bad"}, payoutBody("r-bad", "1234560000", 200_000))
	badID := bad["id"].(string)
	_, slow, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-slow"}, payoutBody("r-slow", "1234562222", 300_000))
	slowID := slow["id"].(string)

	done := waitStatus(t, base, key, okID, "COMPLETED")
	if mustNumber(t, done, "fee") != 2500 || mustNumber(t, done, "version") != 3 {
		t.Fatalf("completed payout: %v", done)
	}
	failed := waitStatus(t, base, key, badID, "FAILED")
	if failed["failure_code"] != "INVALID_ACCOUNT" {
		t.Fatalf("failed payout: %v", failed)
	}
	waitStatus(t, base, key, slowID, "COMPLETED")

	// The other failures, for the reports. (3333's bank return is not
	// acted on by the pipeline yet; the sink test covers REVERSED.)
	others := map[string]string{"1111": "FAILED", "9999": "FAILED"}
	for suffix, want := range others {
		_, o, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-" + suffix}, payoutBody("r-"+suffix, "123456"+suffix, 100_000))
		waitStatus(t, base, key, o["id"].(string), want)
	}

	_, after, _ := call(t, base, key, "GET", "/v1/balance", nil, nil)
	want := start - (150_000 + 2500) - (300_000 + 2500) // the failed ones are returned whole
	if got := mustNumber(t, after, "available"); got != want || mustNumber(t, after, "pending") != 0 {
		t.Fatalf("balance %v, want available %d", after, want)
	}
	checkReports(t, p)
	for _, id := range []string{okID, badID, slowID} {
		if n := p.bank.Received(id); n != 1 {
			t.Errorf("bank received %s %d times, want 1", id, n)
		}
	}
	if dup := p.bank.Duplicates(); len(dup) != 0 {
		t.Errorf("bank saw duplicate sends: %v", dup)
	}
	fixture.Audit(t, p.pool)
	if n := endOffsets(t, p.kafka, p.topics.Requests); n < 3 {
		t.Errorf("requests topic has %d records, want at least 3", n)
	}
	_ = fmt.Sprint
}

// checkReports waits for the sink to catch up, then checks that the report
// totals equal the ledger's (the reconciliation audit) and that the
// merchant's summary shows every outcome.
func checkReports(t *testing.T, p *pipeline) {
	t.Helper()
	var rep audit.Report
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if rep, err = audit.Reports(context.Background(), p.pool, p.reports); err != nil {
			t.Fatal(err)
		}
		if rep.OK() || time.Now().After(deadline) {
			break
		}
	}
	if !rep.OK() {
		t.Fatalf("reports do not match the ledger:\n%s", rep)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	_, sum, _ := call(t, p.api.URL, p.key, "GET", "/v1/reports/summary?group_by=status&tz=UTC&from="+today+"&to="+today, nil, nil)
	got := map[string]int64{}
	for _, r := range sum["data"].([]any) {
		row := r.(map[string]any)
		got[row["status"].(string)] += int64(row["count"].(float64))
	}
	// Each payout once, under its current status: 3 failed (0000, 1111,
	// 9999), 2 completed (ok, 2222); none still PROCESSING.
	want := map[string]int64{"COMPLETED": 2, "FAILED": 3}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("summary by status: %v, want %v", got, want)
	}
	reconcileReports(t, p)
}
