package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

const fee = 2500

var (
	ctx     = context.Background()
	nextRef atomic.Int64
)

// pending creates n PENDING payouts of amount for the merchant's sandbox.
func pending(t *testing.T, pool *pgxpool.Pool, merchantID string, n int, amount int64) []string {
	t.Helper()
	ps := payout.NewStore(pool)
	ids := make([]string, n)
	for i := range ids {
		req := payout.Request{ReferenceID: fmt.Sprintf("ref-%d", nextRef.Add(1)), BankCode: "bca",
			AccountNumber: "1234567890", Amount: amount, Currency: "IDR"}
		req.Normalize()
		d, created, err := ps.Create(ctx, merchantID, payout.Sandbox, req.ReferenceID, req)
		if err != nil || !created {
			t.Fatalf("create payout %d: created=%v err=%v", i, created, err)
		}
		ids[i] = d.ID
	}
	return ids
}

func balance(t *testing.T, l *ledger.Store, merchantID string) ledger.Balance {
	t.Helper()
	b, err := l.Balance(ctx, merchantID, payout.Sandbox, "IDR")
	if err != nil {
		t.Fatalf("balance: %v", err)
	}
	return b
}

func countEntries(t *testing.T, pool *pgxpool.Pool, kind string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM journal_entries WHERE kind = $1`, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDebitBatchAppliedTwiceDebitsOnce(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 10_000_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	ids := pending(t, pool, "m1", 50, 100_000)

	out, changed, err := l.ApplyDebits(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range out {
		if d.Status != payout.Processing || !changed[i] || d.Fee != fee {
			t.Fatalf("payout %s: status %s changed %v fee %d", d.ID, d.Status, changed[i], d.Fee)
		}
	}
	// The same batch again, as after a crash before the offsets were committed.
	out, changed, err = l.ApplyDebits(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := range out {
		if changed[i] {
			t.Fatalf("redelivered payout %s changed again", out[i].ID)
		}
	}
	want := int64(10_000_000 - 50*(100_000+fee))
	if b := balance(t, l, "m1"); b.Available != want || b.Pending != 50*(100_000+fee) {
		t.Fatalf("balance %+v, want available %d pending %d", b, want, 50*(100_000+fee))
	}
	if n := countEntries(t, pool, "debit"); n != 50 {
		t.Fatalf("%d debit entries, want 50", n)
	}
	fixture.Audit(t, pool)
}

func TestConcurrentInstancesDebitOnce(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000_000, merchant.Settings{FeeFlat: fee})
	fixture.Merchant(t, pool, "m2", 1_000_000_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	ids := append(pending(t, pool, "m1", 200, 50_000), pending(t, pool, "m2", 200, 50_000)...)

	// Four instances (zombies after a rebalance) apply overlapping batches
	// at once, in different orders.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		batch := append([]string(nil), ids...)
		if w%2 == 1 {
			for i, j := 0, len(batch)-1; i < j; i, j = i+1, j-1 {
				batch[i], batch[j] = batch[j], batch[i]
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := 0; start < len(batch); start += 37 {
				end := min(start+37, len(batch))
				if _, _, err := l.ApplyDebits(ctx, batch[start:end]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := countEntries(t, pool, "debit"); n != 400 {
		t.Fatalf("%d debit entries, want 400", n)
	}
	for _, m := range []string{"m1", "m2"} {
		if b := balance(t, l, m); b.Pending != 200*(50_000+fee) {
			t.Fatalf("%s pending %d, want %d", m, b.Pending, 200*(50_000+fee))
		}
	}
	fixture.Audit(t, pool)
}

func TestInsufficientBalanceFailsOnlyThatPayout(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 300_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	big := pending(t, pool, "m1", 1, 1_000_000)
	small := pending(t, pool, "m1", 2, 100_000) // the second no longer fits

	out, _, err := l.ApplyDebits(ctx, append(big, small...))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status  payout.Status
		failure string
	}{{payout.Failed, payout.InsufficientBalance}, {payout.Processing, ""}, {payout.Processing, ""}}
	// 300,000 covers two payouts of 100,000 + 2,500.
	for i, d := range out {
		got := ""
		if d.FailureCode != nil {
			got = *d.FailureCode
		}
		if d.Status != want[i].status || got != want[i].failure {
			t.Errorf("payout %d: %s %s, want %s %s", i, d.Status, got, want[i].status, want[i].failure)
		}
	}
	if b := balance(t, l, "m1"); b.Available != 300_000-2*102_500 {
		t.Fatalf("available %d, want %d", b.Available, 300_000-2*102_500)
	}
	third := pending(t, pool, "m1", 1, 100_000)
	out, _, err = l.ApplyDebits(ctx, third)
	if err != nil || out[0].Status != payout.Failed || *out[0].FailureCode != payout.InsufficientBalance {
		t.Fatalf("third payout: %+v %v", out, err)
	}
	fixture.Audit(t, pool)
}

func TestLimitsAndSuspension(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 100_000_000, merchant.Settings{FeeFlat: fee, FeeBPS: 10, MaxPerPayout: 500_000, MaxPerDay: 1_000_000})
	l := ledger.NewStore(pool)

	over := pending(t, pool, "m1", 1, 600_000)
	day := pending(t, pool, "m1", 3, 400_000) // the third passes the daily limit
	out, _, err := l.ApplyDebits(ctx, append(over, day...))
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{}
	for _, d := range out {
		c := string(d.Status)
		if d.FailureCode != nil {
			c += ":" + *d.FailureCode
		}
		codes = append(codes, c)
	}
	want := fmt.Sprint([]string{"FAILED:AMOUNT_LIMIT_EXCEEDED", "PROCESSING", "PROCESSING", "FAILED:AMOUNT_LIMIT_EXCEEDED"})
	if fmt.Sprint(codes) != want {
		t.Fatalf("got %v, want %v", codes, want)
	}
	// fee = 2,500 flat + 10 bps of 400,000 = 2,900
	if out[1].Fee != 2_900 {
		t.Fatalf("fee %d, want 2900", out[1].Fee)
	}

	if err := merchant.NewStore(pool).SetStatus(ctx, "m1", "SUSPENDED"); err != nil {
		t.Fatal(err)
	}
	out, _, err = l.ApplyDebits(ctx, pending(t, pool, "m1", 1, 10_000))
	if err != nil || out[0].Status != payout.Failed || *out[0].FailureCode != payout.MerchantSuspended {
		t.Fatalf("suspended merchant's payout: %+v %v", out, err)
	}
	fixture.Audit(t, pool)
}

func TestSettleFailAndReturnHappenOnce(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 10_000_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	ids := pending(t, pool, "m1", 3, 1_000_000)
	if _, _, err := l.ApplyDebits(ctx, ids); err != nil {
		t.Fatal(err)
	}

	// Each outcome reported by several dispatchers at once moves money once.
	outcomes := []ledger.Outcome{{Completed: true}, {FailureCode: payout.InvalidAccount}, {Completed: true}}
	var wg sync.WaitGroup
	for i, id := range ids {
		for r := 0; r < 5; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := l.Settle(ctx, id, outcomes[i]); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for r := 0; r < 3; r++ {
		if _, _, err := l.Return(ctx, ids[2]); err != nil {
			t.Fatal(err)
		}
	}
	// The failed payout cannot be returned or settled any more.
	if _, changed, _ := l.Return(ctx, ids[1]); changed {
		t.Fatal("a FAILED payout was returned")
	}
	if _, changed, _ := l.Settle(ctx, ids[1], ledger.Outcome{Completed: true}); changed {
		t.Fatal("a FAILED payout was settled")
	}

	// Start 10,000,000; three debits of 1,002,500; one failed (all back);
	// one completed; one completed then returned (amount back, fee kept).
	b := balance(t, l, "m1")
	want := int64(10_000_000 - 1_002_500 - fee)
	if b.Available != want || b.Pending != 0 {
		t.Fatalf("balance %+v, want available %d pending 0", b, want)
	}
	for kind, n := range map[string]int{"debit": 3, "settle": 2, "fail": 1, "return": 1} {
		if got := countEntries(t, pool, kind); got != n {
			t.Errorf("%d %s entries, want %d", got, kind, n)
		}
	}
	fixture.Audit(t, pool)
}
