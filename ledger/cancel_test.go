package ledger_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// TestCancelRacingClaimsNeverBoth cancels debited payouts while dispatch
// claims race for them (payout.ClaimSet, which records the transfer call a
// worker would then make): each payout must end either cancelled with its
// money back and no transfer call, or claimed and not cancelled. Never both.
func TestCancelRacingClaimsNeverBoth(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	ps := payout.NewStore(pool)
	ids := pending(t, pool, "m1", 400, 10_000)
	// A quarter stays PENDING: those cancel without money moving.
	if _, _, err := l.ApplyDebits(ctx, ids[100:]); err != nil {
		t.Fatal(err)
	}
	before := balance(t, l, "m1")

	var wg sync.WaitGroup
	var claimed sync.Map
	wg.Add(2)
	go func() { // dispatch: claims in random sets of up to 25
		defer wg.Done()
		rest := append([]string(nil), ids...)
		rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		for len(rest) > 0 {
			n := min(len(rest), 1+rand.IntN(25))
			got, err := ps.ClaimSet(ctx, rest[:n], "w/"+rest[0], "w", time.Minute, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			for _, c := range got.Claimed {
				claimed.Store(c.ID, true)
			}
			rest = rest[n:]
		}
	}()
	var cancelled sync.Map
	go func() { // the merchant: cancels every payout, in another order
		defer wg.Done()
		rest := append([]string(nil), ids...)
		rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		for _, id := range rest {
			d, err := l.Cancel(ctx, "m1", payout.Sandbox, id)
			switch {
			case err == nil:
				if d.Status != payout.Cancelled {
					t.Errorf("%s: cancel answered %s", id, d.Status)
				}
				cancelled.Store(id, true)
			case errors.Is(err, ledger.ErrNotCancellable):
			default:
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()

	var nCancelled, nClaimed, debitedCancelled int
	var refunded int64
	for i, id := range ids {
		_, c := cancelled.Load(id)
		_, cl := claimed.Load(id)
		if c && cl {
			t.Fatalf("%s was both cancelled and claimed for its bank", id)
		}
		calls := fixture.Count(t, pool, `SELECT count(*) FROM bank_calls WHERE disbursement_id = $1 AND outcome = 'started'`, id)
		if c && calls > 0 {
			t.Fatalf("%s was cancelled but has a transfer call recorded", id)
		}
		if c {
			nCancelled++
			if i >= 100 {
				debitedCancelled++
				refunded += 10_000 + fee
			}
		}
		if cl {
			nClaimed++
		}
	}
	if nCancelled == 0 || nClaimed == 0 {
		t.Fatalf("the race did not race: %d cancelled, %d claimed", nCancelled, nClaimed)
	}
	if after := balance(t, l, "m1"); after.Available != before.Available+refunded {
		t.Fatalf("available %d after cancelling %d debited payouts; want %d", after.Available, debitedCancelled, before.Available+refunded)
	}
	t.Logf("%d cancelled (%d after their debit), %d claimed for their bank", nCancelled, debitedCancelled, nClaimed)
	fixture.Audit(t, pool)

	// Cancelling again, or what was claimed, changes nothing.
	for _, id := range ids[:20] {
		if _, err := l.Cancel(ctx, "m1", payout.Sandbox, id); !errors.Is(err, ledger.ErrNotCancellable) {
			t.Fatalf("second cancel of %s: %v", id, err)
		}
	}
	if _, err := l.Cancel(ctx, "m2", payout.Sandbox, ids[0]); !errors.Is(err, payout.ErrNotFound) {
		t.Fatalf("another merchant's cancel: %v", err)
	}
}
