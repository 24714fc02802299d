package trace_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/trace"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// TestTrace builds a payout's story: accepted, debited (event and ledger
// entry), a bank call with its latency, a callback with two attempts, in
// time order; an unknown id is ErrNotFound.
func TestTrace(t *testing.T) {
	ctx := context.Background()
	pool, url := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{FeeFlat: 100})
	req := payout.Request{ReferenceID: "r1", BankCode: "bca", AccountNumber: "1234567890", Amount: 10_000, Currency: "IDR"}
	d, _, err := payout.NewStore(pool).Create(payout.WithRequestID(ctx, "rid-trace-1"), "m1", payout.Sandbox, "k1", req)
	if err != nil {
		t.Fatal(err)
	}
	id := d.ID
	// The debit through a connection named as a worker names itself: the
	// actor columns default to the connection's application_name.
	worker, err := pgxpool.New(ctx, url+"&application_name=worker@host-a/7")
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	if _, _, err := ledger.NewStore(worker).ApplyDebits(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO bank_calls (disbursement_id, kind, outcome, started_at, finished_at)
			VALUES ($1, 'transfer', 'answered', now() + interval '1 second', now() + interval '1.25 seconds')`,
		`INSERT INTO callbacks (id, merchant_id, environment, type, subject_id, body, status, attempts, retry_until, event_at, created_at, delivered_at, request_id)
			VALUES ('cb_1', 'm1', 'sandbox', 'disbursement.processing', $1, '\x7b7d', 'delivered', 2, now() + interval '1 day', now(),
				now() + interval '2 seconds', now() + interval '4 seconds', 'rid-trace-1')`,
		`INSERT INTO callback_attempts (callback_id, url, started_at, duration_ms, status_code, error)
			SELECT 'cb_1', 'https://merchant.example/cb', now() + interval '2 seconds', 30, 503, 'HTTP 503' WHERE $1 <> ''
			UNION ALL SELECT 'cb_1', 'https://merchant.example/cb', now() + interval '3 seconds', 20, 200, ''`,
	} {
		if _, err := pool.Exec(ctx, q, id); err != nil {
			t.Fatal(err)
		}
	}
	tl, err := trace.Build(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tl.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	want := []string{
		"disbursement " + id + ": merchant m1 (sandbox)",
		"request   accepted by the API, X-Request-Id rid-trace-1",
		"status PENDING (version 1)",
		"status PROCESSING (version 2)  by worker@host-a/7",
		"debit entry [available -10100, in_flight 10100]  by worker@host-a/7",
		"transfer call: answered, took 250ms",
		"callback cb_1 disbursement.processing (X-Request-Id rid-trace-1): delivered after 2 attempt(s), delivered 2s after queueing",
		"callback cb_1 attempt: HTTP 503 in 30ms: HTTP 503",
		"callback cb_1 attempt: HTTP 200 in 20ms",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Fatalf("%q missing or out of order in:\n%s", w, out)
		}
		at += i
	}
	if _, err := trace.Build(ctx, pool, "dsb_nobody"); !errors.Is(err, trace.ErrNotFound) {
		t.Fatalf("unknown id: err = %v, want ErrNotFound", err)
	}
}
