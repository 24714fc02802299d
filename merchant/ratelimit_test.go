package merchant_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
)

// TestTakeHoldsTheLimitUnderConcurrency: concurrent takers on one bucket
// get at most the burst plus the refill over the time they ran.
func TestTakeHoldsTheLimitUnderConcurrency(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1, merchant.Settings{})
	s := merchant.NewStore(pool)
	const rate, burst, n = 10, 20, 100
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			allowed, wait, err := s.Take(context.Background(), "m1", "sandbox", merchant.BudgetRead, rate, burst)
			if err != nil {
				t.Error(err)
			}
			if allowed {
				ok.Add(1)
			} else if wait <= 0 || wait > time.Second/rate+time.Millisecond {
				t.Errorf("wait %s", wait)
			}
		}()
	}
	wg.Wait()
	most := burst + int64(rate*time.Since(start).Seconds())
	if got := ok.Load(); got < burst || got > most {
		t.Fatalf("%d of %d allowed, want %d to %d", got, n, burst, most)
	}
	// The other budget is untouched.
	if allowed, _, _ := s.Take(context.Background(), "m1", "sandbox", merchant.BudgetCreate, 1, 2); !allowed {
		t.Fatal("the create budget was spent by reads")
	}
}

// BenchmarkTake is the cost of the rate limit per API request: one
// upsert on the merchant's bucket row. "hot" is every request of one
// merchant (one row, contended); "spread" is 64 merchants.
func BenchmarkTake(b *testing.B) {
	pool, _ := fixture.Postgres(b)
	s := merchant.NewStore(pool)
	merchants := []string{}
	for i := 0; i < 64; i++ {
		id := "bm" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		fixture.Merchant(b, pool, id, 1, merchant.Settings{})
		merchants = append(merchants, id)
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"hot", 1}, {"spread", 64}} {
		b.Run(c.name, func(b *testing.B) {
			var i atomic.Int64
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m := merchants[int(i.Add(1))%c.n]
					if _, _, err := s.Take(context.Background(), m, "sandbox", merchant.BudgetRead, 1_000_000, 2_000_000); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAuthenticate is the per-request cost the rate limit adds to, for comparison.
func BenchmarkAuthenticate(b *testing.B) {
	pool, _ := fixture.Postgres(b)
	key := fixture.Merchant(b, pool, "m1", 1, merchant.Settings{})
	s := merchant.NewStore(pool)
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Authenticate(context.Background(), key, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
