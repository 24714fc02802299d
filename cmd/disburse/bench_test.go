package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
)

// BenchmarkBatch100k measures, on the real Kafka and Postgres with the
// stages and sandbox banks in this process: the time to accept (HTTP 202) a
// 100,000-item CSV batch, the time until every item is terminal, and the
// peak heap growth while the API parses and stores it. Single payouts sent
// one at a time are the baseline in the same run (payouts/s).
// Run: make bench BENCH=Batch100k BENCHTIME=1x
func BenchmarkBatch100k(b *testing.B) {
	const n = 100_000
	var csv strings.Builder
	csv.WriteString("reference_id,bank_code,account_number,amount\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&csv, "bench-%d,%s,12%07d5,%d\n", i, []string{"bca", "bni", "bri", "mandiri", "cimb", "permata"}[i%6], i%10_000_000, 10_000+i%1000)
	}
	body := csv.String()
	for it := 0; it < b.N; it++ {
		p := startPipeline(b, testenv.Kafka(b), testenv.TopicPrefix(b))
		// Enough money for every item: the run measures payouts, not refusals.
		if err := ledger.NewStore(p.pool).Deposit(context.Background(), "m1", payout.Sandbox, "IDR", 10_000_000_000, "benchmark top-up"); err != nil {
			b.Fatal(err)
		}

		// Baseline: 200 single payouts, one request after another.
		singleStart := time.Now()
		for i := 0; i < 200; i++ {
			code, _, _ := call(b, p.api.URL, p.key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": fmt.Sprint("s", i)},
				payoutBody(fmt.Sprint("single-", i), "1234567895", 10_000))
			if code != 202 {
				b.Fatalf("single payout: %d", code)
			}
		}
		singleRate := 200 / time.Since(singleStart).Seconds()

		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		go func() {
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}()
		start := time.Now()
		code, acc, _ := postBatch(b, p.api.URL, p.key, "reference_id=bench", fmt.Sprint("bench-", it), body)
		accepted := time.Since(start)
		close(stop)
		if code != 202 || acc["item_count"] != float64(n) {
			b.Fatalf("batch: %d %v", code, acc["error"])
		}
		id := acc["id"].(string)
		for {
			_, st, _ := call(b, p.api.URL, p.key, "GET", "/v1/batches/"+id, nil, nil)
			if st["status"] == "COMPLETED" {
				break
			}
			if time.Since(start) > 20*time.Minute {
				b.Fatalf("batch not complete after 20 minutes: %v", st["counts"])
			}
			time.Sleep(time.Second)
		}
		done := time.Since(start)
		b.ReportMetric(accepted.Seconds(), "accept_s")
		b.ReportMetric(done.Seconds(), "terminal_s")
		b.ReportMetric(float64(n)/done.Seconds(), "items/s")
		b.ReportMetric(singleRate, "single_accepts/s")
		b.ReportMetric(float64(n)/accepted.Seconds(), "batch_accepts/s")
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapAlloc))/(1<<20), "peak_heap_MiB")
		p.stop()
	}
}
