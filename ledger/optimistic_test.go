package ledger_test

import (
	"testing"

	"github.com/disburse/disburse/audit"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// A debit batch decides on balances it read without a lock and locks the
// accounts only at the end. Here another batch of the same merchant (as
// while two instances hold the partition across a rebalance) takes most of
// the deposit between the first batch's read and its lock: the first batch
// must not debit what is no longer there. It decides again under the lock,
// so the balance never goes below zero and the books stay exact.
func TestDebitDecidedAgainWhenBalanceFellSinceRead(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	first := pending(t, pool, "m1", 9, 100_000)  // 9 x 102,500 = 922,500
	second := pending(t, pool, "m1", 6, 100_000) // 6 x 102,500 = 615,000

	fired := false
	reset := ledger.SetAfterUnlockedRead(func() {
		if fired {
			return
		}
		fired = true
		// The second batch runs its whole transaction, unhooked, while the
		// first holds only its payouts' locks.
		out, _, err := l.ApplyDebits(ctx, second)
		if err != nil {
			t.Errorf("second batch: %v", err)
		}
		for _, d := range out {
			if d.Status != payout.Processing {
				t.Errorf("second batch, payout %s: %s, want PROCESSING", d.ID, d.Status)
			}
		}
	})
	defer reset()

	out, _, err := l.ApplyDebits(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("the hook never ran: the first batch did not take the optimistic path")
	}
	debited := 0
	for _, d := range out {
		switch {
		case d.Status == payout.Processing:
			debited++
		case d.Status == payout.Failed && d.FailureCode != nil && *d.FailureCode == payout.InsufficientBalance:
		default:
			t.Fatalf("first batch, payout %s: %s", d.ID, d.Status)
		}
	}
	// 1,000,000 - 615,000 = 385,000 left: three payouts of 102,500 fit.
	if debited != 3 {
		t.Fatalf("first batch debited %d payouts after the second took 615,000 of 1,000,000; want 3", debited)
	}
	if b := balance(t, l, "m1"); b.Available != 1_000_000-9*102_500 {
		t.Fatalf("available %d, want %d", b.Available, 1_000_000-9*102_500)
	}
	res, err := audit.Run(ctx, pool, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("audit: %v", res.Violations)
	}
}

// Money that arrives between the read and the lock only helps: the batch
// stands as decided, without a second pass.
func TestDebitStandsWhenBalanceGrewSinceRead(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 300_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	ids := pending(t, pool, "m1", 4, 100_000)

	reads := 0
	reset := ledger.SetAfterUnlockedRead(func() {
		reads++
		if reads == 1 {
			if err := l.Deposit(ctx, "m1", payout.Sandbox, "IDR", 1_000_000, "top-up during a debit"); err != nil {
				t.Errorf("deposit: %v", err)
			}
		}
	})
	defer reset()
	out, _, err := l.ApplyDebits(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Fatalf("%d unlocked reads, want 1 (no second pass)", reads)
	}
	// Decided on 300,000: two payouts of 102,500 fit, the other two failed.
	debited := 0
	for _, d := range out {
		if d.Status == payout.Processing {
			debited++
		}
	}
	if debited != 2 {
		t.Fatalf("debited %d, want 2 (decided on the balance read)", debited)
	}
	if b := balance(t, l, "m1"); b.Available != 1_300_000-2*102_500 {
		t.Fatalf("available %d, want %d", b.Available, 1_300_000-2*102_500)
	}
}
