package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor/statement"
)

// returnsPayouts is how many payouts TestEveryReturnApplied sends:
// DISBURSE_TEST_RETURNS_PAYOUTS, default 20,000.
func returnsPayouts(t *testing.T) int {
	n := 20_000
	if v := os.Getenv("DISBURSE_TEST_RETURNS_PAYOUTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("DISBURSE_TEST_RETURNS_PAYOUTS=%q: want a number of at least 100", v)
		}
	}
	return n
}

// TestEveryReturnApplied: 20,000 payouts (DISBURSE_TEST_RETURNS_PAYOUTS)
// from four merchants to four banks, 1% of them to accounts ending 3333
// that the bank returns after paying. Every one of those ends REVERSED with
// its amount back (the fee kept), every other one COMPLETED, each return
// booked once, nothing sent twice, the audit clean, and the day's
// reconciliation of every bank clean. Returns used to be noticed only
// among the newest 200 completed payouts; at this rate most were missed.
func TestEveryReturnApplied(t *testing.T) {
	n := returnsPayouts(t)
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	const deposit, fee, amount = 1_000_000_000_000, 2500, 10_000
	keys := map[string]string{"m1": p.key}
	if err := ledger.NewStore(p.pool).Deposit(context.Background(), "m1", payout.Sandbox, "IDR", deposit-1_000_000_000, "test top-up"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"m2", "m3", "m4"} {
		keys[m] = fixture.Merchant(t, p.pool, m, deposit, api.DefaultSettings)
	}
	banks := []string{"bca", "bni", "bri", "mandiri"}
	returned := map[string]int{} // merchant -> payouts to 3333 accounts
	start := time.Now()
	perMerchant := n / len(keys)
	for m, key := range keys {
		var csv strings.Builder
		csv.WriteString("reference_id,bank_code,account_number,amount\n")
		for i := range perMerchant {
			acct := fmt.Sprintf("12%07d5", i)
			if i%100 == 7 {
				acct = fmt.Sprintf("12%04d3333", i%10_000)
				returned[m]++
			}
			fmt.Fprintf(&csv, "%s-%d,%s,%s,%d\n", m, i, banks[i%len(banks)], acct, amount)
		}
		code, acc, _ := postBatch(t, p.api.URL, key, "reference_id=returns-"+m, "returns-"+m, csv.String())
		if code != 202 || acc["item_count"] != float64(perMerchant) {
			t.Fatalf("batch of %s: %d %v", m, code, acc)
		}
	}
	total, totalReturned := perMerchant*len(keys), 0
	for _, r := range returned {
		totalReturned += r
	}
	// The machine's speed varies with its load, so the test fails on a
	// stall (no payout ended and no return applied for two minutes), not
	// on a fixed deadline; an hour bounds it in any case.
	const stall = 2 * time.Minute
	var last [2]int
	progressed, limit := time.Now(), time.Now().Add(time.Hour)
	for {
		done := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status IN ('COMPLETED', 'REVERSED', 'FAILED')`)
		rev := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status = 'REVERSED'`)
		if done == total && rev == totalReturned {
			break
		}
		if now := [2]int{done, rev}; now != last {
			last, progressed = now, time.Now()
		}
		if time.Since(progressed) > stall || time.Now().After(limit) {
			t.Fatalf("after %s (no progress for %s): %d of %d terminal, %d of %d returns applied",
				time.Since(start).Round(time.Second), time.Since(progressed).Round(time.Second), done, total, rev, totalReturned)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d payouts (%d returned) terminal and every return applied in %s", total, totalReturned, time.Since(start).Round(time.Second))

	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE account_number LIKE '%3333' AND status <> 'REVERSED'`); n != 0 {
		t.Errorf("%d payouts to 3333 accounts are not REVERSED", n)
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE account_number NOT LIKE '%3333' AND status <> 'COMPLETED'`); n != 0 {
		t.Errorf("%d other payouts are not COMPLETED", n)
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM journal_entries WHERE kind = 'return'`); n != totalReturned {
		t.Errorf("%d return entries, want %d", n, totalReturned)
	}
	for m, r := range returned {
		b, err := ledger.NewStore(p.pool).Balance(context.Background(), m, payout.Sandbox, "IDR")
		if err != nil {
			t.Fatal(err)
		}
		want := int64(deposit - perMerchant*fee - (perMerchant-r)*amount)
		if b.Available != want || b.Pending != 0 {
			t.Errorf("%s: available %d pending %d, want %d and 0", m, b.Available, b.Pending, want)
		}
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
	for _, bank := range banks {
		var out bytes.Buffer
		if err := reconcile(context.Background(), []string{"--postgres-url", p.pgURL, "--bank-url", p.bankURL, "--bank", bank, "--grace", "0s"}, &out); err != nil {
			t.Errorf("reconcile %s: %v\n%s", bank, err, out.String())
		}
	}
}

// TestReconcileCommand: `disburse reconcile` is clean (exit 0) on a day
// where the bank and the ledger agree, returns included, and exits 3
// listing the difference when the sandbox bank books one the ledger does
// not have: a payment disburse never sent, a second payment of a payout.
func TestReconcileCommand(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	var ids []string
	for i, acct := range []string{"1234567890", "1234563333", "1234561111", "1234567895"} {
		ids = append(ids, submit(t, p, fmt.Sprintf("rec-%d", i), "bca", acct, 100_000))
	}
	waitStatus(t, p.api.URL, p.key, ids[1], "REVERSED")
	waitAll(t, p, 30*time.Second)
	date := time.Now().In(connectors.Jakarta).Format(time.DateOnly)
	args := []string{"--postgres-url", p.pgURL, "--bank-url", p.bankURL, "--bank", "bca", "--date", date, "--grace", "0s"}
	run := func(extra ...string) (string, error) {
		var out bytes.Buffer
		err := reconcile(context.Background(), append(append([]string{}, args...), extra...), &out)
		return out.String(), err
	}
	if out, err := run(); err != nil {
		t.Fatalf("reconcile of an agreeing day: %v\n%s", err, out)
	}
	if out, err := run("--bank", "bni"); err != nil {
		t.Fatalf("reconcile of a bank with nothing: %v\n%s", err, out)
	}

	if _, err := p.bank.Inject("bca", connectors.StatementEntry{Reference: "never-sent", Kind: connectors.EntryPaid, Amount: 70_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.bank.Inject("bca", connectors.StatementEntry{Reference: ids[0], Kind: connectors.EntryPaid, Amount: 100_000}); err != nil {
		t.Fatal(err)
	}
	out, err := run("--json")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitDifferences {
		t.Fatalf("reconcile with differences: %v, want exit %d\n%s", err, exitDifferences, out)
	}
	var rep statement.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, d := range rep.Differences {
		got[d.Reference] = d.Kind
	}
	want := map[string]string{"never-sent": statement.PaidNotCompleted, ids[0]: statement.AmountDiffers}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("differences %v, want %v", got, want)
	}
	if out, err := run(); !errors.As(err, &ee) || ee.code != exitDifferences || !strings.Contains(out, "never-sent") || !strings.Contains(out, statement.AmountDiffers) {
		t.Errorf("table: %v\n%s", err, out)
	}

	// Usage: -h is not an error; bad settings exit 2 and read nothing.
	if err := reconcile(context.Background(), []string{"-h"}, &bytes.Buffer{}); err != nil {
		t.Errorf("-h: %v", err)
	}
	for _, bad := range [][]string{
		{"--bank", "bca"},
		{"--postgres-url", p.pgURL, "--bank", "ovo"},
		{"--postgres-url", p.pgURL, "--bank", "bca", "--date", "2026-13-01"},
		{"--postgres-url", p.pgURL, "--bank", "bca", "--grace", "-1s"},
	} {
		if err := reconcile(context.Background(), bad, &bytes.Buffer{}); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: %v, want exit 2", bad, err)
		}
	}
}
