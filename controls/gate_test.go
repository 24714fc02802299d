package controls

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

// pending stores n PENDING payouts of m1 and returns their request records.
func pending(tb testing.TB, pool *pgxpool.Pool, n int, amount int64) []events.Request {
	tb.Helper()
	set := make([]payout.NewPayout, n)
	for i := range set {
		ref := fmt.Sprintf("g-%d-%d", time.Now().UnixNano(), i)
		set[i] = payout.NewPayout{MerchantID: "m1", Environment: payout.Sandbox, IdempotencyKey: ref,
			Request: payout.Request{ReferenceID: ref, BankCode: "bca", AccountNumber: "1234567890", Amount: amount, Currency: "IDR"}}
	}
	out, err := payout.NewStore(pool).CreateSet(context.Background(), set)
	if err != nil {
		tb.Fatal(err)
	}
	reqs := make([]events.Request, n)
	for i, c := range out {
		d := c.Disbursement
		reqs[i] = events.Request{DisbursementID: d.ID, MerchantID: d.MerchantID, Environment: d.Environment, Amount: d.Amount}
	}
	return reqs
}

// TestGate: without controls every id passes; paused, none does and each
// stays PENDING; over a count limit, the later ones in the batch's order
// fail VELOCITY_LIMIT_EXCEEDED from PENDING, without a debit.
func TestGate(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000_000, merchant.Settings{})
	ctx := context.Background()
	g := NewGate(pool, slog.New(slog.DiscardHandler))
	st := NewStore(pool)
	reqs := pending(t, pool, 5, 10_000)
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.DisbursementID
	}
	admit := func() []string {
		got, err := g.Admit(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := admit(); len(got) != 5 {
		t.Fatalf("no controls: admitted %d of 5", len(got))
	}
	if _, err := st.Pause(ctx, "m1", payout.Sandbox, ByMerchant, "key_x", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := admit(); len(got) != 0 {
		t.Fatalf("paused: admitted %v", got)
	}
	if _, err := st.Resume(ctx, "m1", payout.Sandbox, ByMerchant, "key_x", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetLimits(ctx, "m1", payout.Sandbox, "key_x", Limits{MaxCountPerHour: 3}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := admit(); len(got) != 3 || got[0] != ids[0] || got[2] != ids[2] {
		t.Fatalf("limit 3: admitted %v of %v", got, ids)
	}
	var failed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM disbursements WHERE id = ANY($1) AND status = 'FAILED'
		AND failure_code = 'VELOCITY_LIMIT_EXCEEDED' AND debited_at IS NULL`, ids[3:]).Scan(&failed); err != nil || failed != 2 {
		t.Fatalf("%d of the 2 over the limit failed (%v)", failed, err)
	}
	fixture.Audit(t, pool)
}

// BenchmarkGateNoControls is the gate's cost on the ledger stage's hot
// path for environments without controls: one read per polled batch of
// 1,000 requests.
func BenchmarkGateNoControls(b *testing.B) {
	pool, _ := fixture.Postgres(b)
	fixture.Merchant(b, pool, "m1", 1_000_000_000, merchant.Settings{})
	reqs := pending(b, pool, 1000, 10_000)
	g := NewGate(pool, slog.New(slog.DiscardHandler))
	// Another merchant's controls: the table is not empty.
	fixture.Merchant(b, pool, "m2", 1000, merchant.Settings{})
	if _, err := NewStore(pool).Pause(context.Background(), "m2", payout.Sandbox, ByMerchant, "key_x", "bench", time.Now()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.Admit(context.Background(), reqs); err != nil {
			b.Fatal(err)
		}
	}
}
