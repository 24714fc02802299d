package merchant_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
)

// admitted counts the calls limiter lets through in d, asking every
// millisecond, after draining what its bucket held.
func admitted(t *testing.T, l *merchant.ShareLimiter, rate int, d time.Duration) int {
	t.Helper()
	ctx := context.Background()
	for {
		ok, _, err := l.Take(ctx, "m1", "sandbox", merchant.BudgetCreate, rate, 2*rate)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	n := 0
	for start := time.Now(); time.Since(start) < d; time.Sleep(time.Millisecond) {
		ok, _, err := l.Take(ctx, "m1", "sandbox", merchant.BudgetCreate, rate, 2*rate)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestShareLimiterAcrossInstances: two API instances registered in
// Postgres each admit half of a merchant's rate, so together they admit
// about the rate and not twice it; when one stops heartbeating the other
// sees it gone within seconds and admits the whole rate.
func TestShareLimiterAcrossInstances(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	s := merchant.NewStore(pool)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const every, liveness = 100 * time.Millisecond, time.Second
	a := s.Instances("api-a", every, liveness, nil)
	b := s.Instances("api-b", every, liveness, nil)
	for _, in := range []*merchant.Instances{a, b} {
		if err := in.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	go a.Run(ctx)
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Live() != 2 || b.Live() != 2 {
		t.Fatalf("live instances: a sees %d, b sees %d, want 2", a.Live(), b.Live())
	}
	la, lb := merchant.NewShareLimiter(a.Live), merchant.NewShareLimiter(b.Live)

	// Both instances at once for 2 s, merchant rate 100/s: about 200 in
	// total (each its share of 50/s), far from the 400 of two full buckets.
	const rate = 100
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, l := range []*merchant.ShareLimiter{la, lb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i] = admitted(t, l, rate, 2*time.Second)
		}()
	}
	// b heartbeats by hand while it runs, then stops: it dies.
	for range 20 {
		if err := b.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(every)
	}
	wg.Wait()
	total := counts[0] + counts[1]
	t.Logf("two instances admitted %d + %d in 2 s at %d/s", counts[0], counts[1], rate)
	if total < 150 || total > 250 {
		t.Fatalf("two instances admitted %d in 2 s, want about 200 (rate %d/s)", total, rate)
	}

	// b stopped beating: a counts itself alone within liveness + a beat.
	deadline := time.Now().Add(liveness + 2*time.Second)
	for a.Live() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a still sees %d live instances %s after b stopped", a.Live(), liveness+2*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	alone := admitted(t, la, rate, time.Second)
	t.Logf("alone, a admitted %d in 1 s at %d/s", alone, rate)
	if alone < 75 || alone > 125 {
		t.Fatalf("after b died, a admitted %d in 1 s, want about %d", alone, rate)
	}

	// A graceful stop removes the row at once.
	cancel()
	time.Sleep(200 * time.Millisecond)
	if n := fixture.Count(t, pool, `SELECT count(*) FROM api_instances WHERE id = 'api-a'`); n != 0 {
		t.Fatalf("a's row is still registered after it stopped")
	}
}

// TestShareLimiterRejectsBadLimits: a zero rate is a configuration error,
// as for Store.Take.
func TestShareLimiterRejectsBadLimits(t *testing.T) {
	l := merchant.NewShareLimiter(func() int { return 0 })
	if _, _, err := l.Take(context.Background(), "m1", "sandbox", merchant.BudgetRead, 0, 1); err == nil {
		t.Fatal("rate 0 was accepted")
	}
	// live 0 counts as one instance: the whole burst is there.
	for i := range 4 {
		if ok, _, _ := l.Take(context.Background(), "m1", "sandbox", merchant.BudgetRead, 2, 4); !ok {
			t.Fatalf("call %d of a burst of 4 refused", i)
		}
	}
	if ok, wait, _ := l.Take(context.Background(), "m1", "sandbox", merchant.BudgetRead, 2, 4); ok || wait <= 0 || wait > 600*time.Millisecond {
		t.Fatalf("the fifth call: ok=%v wait=%s, want refused with a wait of about 0.5 s", ok, wait)
	}
}
