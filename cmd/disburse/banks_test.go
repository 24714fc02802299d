package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// submit creates one payout through the API and returns its id.
func submit(t *testing.T, p *pipeline, ref, bank, account string, amount int64) string {
	t.Helper()
	body := map[string]any{"reference_id": ref, "bank_code": bank, "account_number": account, "amount": amount}
	code, d, _ := call(t, p.api.URL, p.key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": ref}, body)
	if code != 202 {
		t.Fatalf("create %s: %d %v", ref, code, d)
	}
	return d["id"].(string)
}

// waitAll waits until no payout of the database is PENDING or PROCESSING.
func waitAll(t *testing.T, p *pipeline, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status IN ('PENDING', 'PROCESSING')`)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d payouts still open after %s", n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func noDuplicates(t *testing.T, p *pipeline) {
	t.Helper()
	if dup := p.bank.Duplicates(); len(dup) != 0 {
		t.Errorf("the bank received references more than once: %v", dup)
	}
}

// TestMagicAccounts: every sandbox magic account ends in its documented
// status with the balance right, and the timed-out transfer is sent once.
func TestMagicAccounts(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	_, before, _ := call(t, p.api.URL, p.key, "GET", "/v1/balance", nil, nil)
	start := mustNumber(t, before, "available")

	cases := []struct {
		account, status, failure string
		cost                     int64 // what the payout costs the merchant in the end
	}{
		{"1234567890", "COMPLETED", "", 100_000 + 2500},
		{"1234560000", "FAILED", "INVALID_ACCOUNT", 0},
		{"1234561111", "FAILED", "BANK_REJECTED", 0},
		{"1234569999", "FAILED", "ACCOUNT_CLOSED", 0},
		{"1234562222", "COMPLETED", "", 100_000 + 2500},
		{"1234563333", "REVERSED", "", 2500}, // the bank returns the amount; the fee stays
		{"081234563333", "REVERSED", "", 2500},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		bank := "bca"
		if len(c.account) == 12 {
			bank = "ovo" // an e-wallet: the VA at bca ends in the phone's digits
		}
		ids[i] = submit(t, p, fmt.Sprintf("magic-%d", i), bank, c.account, 100_000)
	}
	var cost int64
	for i, c := range cases {
		d := waitStatus(t, p.api.URL, p.key, ids[i], c.status)
		if got, _ := d["failure_code"].(string); got != c.failure {
			t.Errorf("%s: failure code %q, want %q", c.account, got, c.failure)
		}
		cost += c.cost
	}
	_, after, _ := call(t, p.api.URL, p.key, "GET", "/v1/balance", nil, nil)
	if got := mustNumber(t, after, "available"); got != start-cost || mustNumber(t, after, "pending") != 0 {
		t.Errorf("balance %v, want available %d", after, start-cost)
	}
	if n := p.bank.Received(ids[4]); n != 1 {
		t.Errorf("the ...2222 payout reached the bank %d times, want 1", n)
	}
	// A return is applied once, however often it is seen.
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM journal_entries WHERE kind = 'return'`); n != 2 {
		t.Errorf("%d return entries, want 2", n)
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}

// TestOutageHoldsBackOnlyThatBank takes bank bni down for 30 s while payouts to bni and bca flow at a steady rate. bca's completions per
// second during the outage must stay within 20% of its rate before it; bni's
// breaker opens, its payouts park and all complete once it is back.
func TestOutageHoldsBackOnlyThatBank(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	const rate = 8 // payouts per second per bank: well within what a shared 2-core machine sustains under -race
	const pre, outage, post = 6 * time.Second, 30 * time.Second, 2 * time.Second

	// Each payout is submitted on its own goroutine on the tick, so the
	// offered rate does not depend on the API's latency.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var sent atomic.Int64
	for _, bank := range []string{"bni", "bca"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					submit(t, p, fmt.Sprintf("%s-%d", bank, i), bank, "1234567890", 50_000)
					sent.Add(1)
				}()
			}
		}()
	}
	time.Sleep(pre)
	down := time.Now()
	if err := p.bank.SetDown("bni", true); err != nil {
		t.Fatal(err)
	}
	opened := false
	for time.Since(down) < outage {
		if p.guard.State("bni").Breaker == "open" {
			opened = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	up := time.Now()
	if err := p.bank.SetDown("bni", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(post)
	close(stop)
	wg.Wait()
	waitAll(t, p, 60*time.Second)

	// bca's completions per second in the 4 s before the outage (after 2 s
	// for the consumer groups to settle and the backlog to clear) and
	// during it, leaving out its first second (the breaker tripping).
	rateIn := func(from, to time.Time) float64 {
		n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements
			WHERE bank_code = 'bca' AND status = 'COMPLETED' AND completed_at >= $1 AND completed_at < $2`, from, to)
		return float64(n) / to.Sub(from).Seconds()
	}
	before := rateIn(down.Add(-4*time.Second), down)
	during := rateIn(down.Add(time.Second), up)
	t.Logf("bca completions/s: %.1f before the bni outage, %.1f during it (%d payouts sent)", before, during, sent.Load())
	if during < 0.8*before || during > 1.2*before {
		t.Errorf("bca's rate changed by more than 20%% during bni's outage: %.1f/s before, %.1f/s during", before, during)
	}
	if !opened {
		t.Errorf("bni's breaker never opened during its outage")
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status <> 'COMPLETED'`); n != 0 {
		t.Errorf("%d payouts did not complete", n)
	}
	parkedCopies := endOffsets(t, p.kafka, p.topics.DispatchRetry)
	t.Logf("payouts parked on %s: %d records", p.topics.DispatchRetry, parkedCopies)
	if parkedCopies == 0 {
		t.Errorf("no payout was parked during bni's outage")
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}

// TestRateLimitedBank: a bank that answers 429 over 5 requests/s; the
// connector backs off and every payout completes, each sent once.
func TestRateLimitedBank(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) {
		c.banks.Banks = map[string]banksim.BankConfig{"bni": {Latency: banksim.Latency{Median: 5 * time.Millisecond}, RateLimit: 5}}
	})
	const n = 20
	for i := range n {
		submit(t, p, fmt.Sprintf("rl-%d", i), "bni", "1234567890", 50_000)
	}
	waitAll(t, p, 60*time.Second)
	if got := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status = 'COMPLETED'`); got != n {
		t.Errorf("%d of %d payouts completed", got, n)
	}
	if p.meter.RateLimited("bni") == 0 {
		t.Errorf("the bank never answered 429: the test did not test backing off")
	}
	t.Logf("429 answers: %d", p.meter.RateLimited("bni"))
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}

// TestBulkhead: a bank with 1.5 s latency (the issue says 10 s; 1.5 s is
// already 300 times the other banks' and keeps the test short) and a
// max in-flight of 3 never has more than 3 requests in progress, and the
// payouts to another bank complete as fast as without it.
func TestBulkhead(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) {
		c.banks.Banks = map[string]banksim.BankConfig{"bni": {Latency: banksim.Latency{Median: 1500 * time.Millisecond}}}
		prof := c.profiles["bni"]
		prof.MaxInFlight = 3
		prof.Timeout = 5 * time.Second
		c.profiles["bni"] = prof
	})
	// Baseline in the same run: 30 bca payouts with bni idle.
	runFast := func(tag string) time.Duration {
		start := time.Now()
		ids := make([]string, 30)
		for i := range ids {
			ids[i] = submit(t, p, fmt.Sprintf("fast-%s-%d", tag, i), "bca", "1234567890", 50_000)
		}
		for _, id := range ids {
			waitStatus(t, p.api.URL, p.key, id, "COMPLETED")
		}
		return time.Since(start)
	}
	alone := runFast("alone")

	slow := make([]string, 12)
	for i := range slow {
		slow[i] = submit(t, p, fmt.Sprintf("slow-%d", i), "bni", "1234567890", 50_000)
	}
	fastTook := runFast("beside-slow")
	waitAll(t, p, 60*time.Second)
	t.Logf("bca's 30 payouts: %s alone, %s beside the slow bank; bni peak in-flight %d", alone, fastTook, p.meter.Peak("bni"))
	if peak := p.meter.Peak("bni"); peak > 3 || peak == 0 {
		t.Errorf("bni had %d requests in flight at once, want 1 to 3", peak)
	}
	// 12 payouts at 1.5 s, 3 at a time, take 6 s at bni; bca's must not
	// wait for them: beside the slow bank they take no more than twice the
	// baseline (plus a second for a loaded machine), far below those 6 s.
	if limit := 2*alone + time.Second; fastTook > limit {
		t.Errorf("bca's payouts took %s beside the slow bank, %s alone: the slow bank held them back", fastTook, alone)
	}
	noDuplicates(t, p)
	fixture.Audit(t, p.pool)
}
