package ledger_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
)

var benchRun atomic.Int64

// bulkPending inserts n PENDING payouts for m1 in one statement (set-up, not measured).
func bulkPending(b *testing.B, pool *pgxpool.Pool, n int) []string {
	b.Helper()
	run := benchRun.Add(1)
	rows, err := pool.Query(context.Background(), `WITH changed AS (INSERT INTO disbursements
		(id, merchant_id, environment, idempotency_key, request_hash, reference_id, bank_code, account_number, amount, currency, status)
		SELECT 'bench-' || $1 || '-' || g, 'm1', 'sandbox', 'k-' || $1 || '-' || g, '\x00', 'r-' || $1 || '-' || g,
			'bca', '1234567890', 10000 + g % 1000, 'IDR', 'PENDING'
		FROM generate_series(1, $2::int) AS g ORDER BY g RETURNING *),
		ev AS (INSERT INTO payout_events (disbursement_id, merchant_id, environment, status, version, at)
			SELECT id, merchant_id, environment, status, version, created_at FROM changed)
		SELECT id FROM changed`, fmt.Sprint(run), n)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 0, n)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return ids
}

func debitAll(b *testing.B, l *ledger.Store, ids []string, size int) time.Duration {
	b.Helper()
	start := time.Now()
	for i := 0; i < len(ids); i += size {
		if _, _, err := l.ApplyDebits(context.Background(), ids[i:min(i+size, len(ids))]); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

func benchLedger(b *testing.B) (*pgxpool.Pool, *ledger.Store) {
	pool, _ := fixture.Postgres(b)
	var sc string
	_ = pool.QueryRow(context.Background(), `SHOW synchronous_commit`).Scan(&sc)
	if sc != "on" {
		b.Fatalf("synchronous_commit is %q; the benchmark measures durable commits only", sc)
	}
	fixture.Merchant(b, pool, "m1", 1<<60, merchant.Settings{FeeFlat: 2500})
	return pool, ledger.NewStore(pool)
}

// BenchmarkApplyDebits: debits per second applied by the ledger stage's
// store, one transaction per batch of the given size (batch=1 is one
// transaction per payout).
func BenchmarkApplyDebits(b *testing.B) {
	pool, l := benchLedger(b)
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			const perIter = 1000
			var spent time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ids := bulkPending(b, pool, perIter)
				b.StartTimer()
				spent += debitAll(b, l, ids, size)
			}
			b.ReportMetric(float64(b.N*perIter)/spent.Seconds(), "debits/s")
			b.ReportMetric(float64(spent.Microseconds())/float64(b.N*perIter), "µs/debit")
		})
	}
}

// BenchmarkBatchedVsSingle measures, in the same iteration, 1,000 debits
// one per transaction and 1,000 debits in batches of 100 and of 1,000, and
// reports the ratio of batched to one-per-transaction throughput.
func BenchmarkBatchedVsSingle(b *testing.B) {
	pool, l := benchLedger(b)
	const n = 1000
	var single, b100, b1000 time.Duration
	for i := 0; i < b.N; i++ {
		single += debitAll(b, l, bulkPending(b, pool, n), 1)
		b100 += debitAll(b, l, bulkPending(b, pool, n), 100)
		b1000 += debitAll(b, l, bulkPending(b, pool, n), 1000)
	}
	rate := func(d time.Duration) float64 { return float64(b.N*n) / d.Seconds() }
	b.ReportMetric(rate(single), "single_debits/s")
	b.ReportMetric(rate(b100), "batch100_debits/s")
	b.ReportMetric(rate(b1000), "batch1000_debits/s")
	b.ReportMetric(rate(b100)/rate(single), "ratio100")
	b.ReportMetric(rate(b1000)/rate(single), "ratio1000")
	fixture.Audit(b, pool)
}
