package api_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/merchant"
)

// TestCreateLoad64Clients is a load run, not a check: it runs only when
// DISBURSE_BENCH_CREATES=N is set. It sends N POST /v1/disbursements
// through one API instance on the real Postgres and Kafka from 64
// concurrent clients of one merchant, each create with a new key, and logs
// creates/s and the p50 and p99 latency. With DISBURSE_BENCH_RATE=R the
// clients send R creates/s in all (open loop: each client on its own
// schedule, latency counted from the scheduled time), for the latency at a
// given rate instead of at saturation. It fails if any create is not 202.
// docs/benchmarks.md has the figures and the commands.
func TestCreateLoad64Clients(t *testing.T) {
	total, _ := strconv.Atoi(os.Getenv("DISBURSE_BENCH_CREATES"))
	if total <= 0 {
		t.Skip("a load run: set DISBURSE_BENCH_CREATES=N to run it")
	}
	e := newEnv(t)
	// The limits are not what is measured: high enough never to refuse.
	e.s.Limits = merchant.Limits{CreatePerSecond: 1_000_000, ReadPerSecond: 1_000_000}
	e.s.RateLimiter = merchant.NewShareLimiter(func() int { return 1 })
	// DISBURSE_BENCH_GROUPS=window,max,inflight tunes the group commit.
	if g := strings.Split(os.Getenv("DISBURSE_BENCH_GROUPS"), ","); len(g) == 3 {
		w, _ := time.ParseDuration(g[0])
		m, _ := strconv.Atoi(g[1])
		f, _ := strconv.Atoi(g[2])
		e.s.GroupCommit = api.GroupCommit{Window: w, Max: m, InFlight: f}
	}
	// As the api role runs: a key's lookup reused for a second, unless
	// DISBURSE_BENCH_AUTH_CACHE says otherwise (0s: a lookup per call).
	e.s.AuthCacheTTL = api.DefaultAuthCacheTTL
	if v := os.Getenv("DISBURSE_BENCH_AUTH_CACHE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("DISBURSE_BENCH_AUTH_CACHE: %v", err)
		}
		e.s.AuthCacheTTL = d
	}
	const clients = 64
	rate, _ := strconv.Atoi(os.Getenv("DISBURSE_BENCH_RATE"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	run := fmt.Sprint(time.Now().UnixNano())
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				sent := time.Now()
				if rate > 0 {
					// Client c's k-th create is due at start + (k*clients+c)/rate.
					sent = start.Add(time.Duration(float64(k*clients+c) / float64(rate) * float64(time.Second)))
					time.Sleep(time.Until(sent))
				}
				body := fmt.Sprintf(`{"reference_id":"b%s-%d","bank_code":"bca","account_number":"1234567890","amount":150000}`, run, i)
				req, _ := http.NewRequest("POST", e.srv.URL+"/v1/disbursements", strings.NewReader(body))
				req.SetBasicAuth(e.key, "")
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprintf("b%s-%d", run, i))
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
				lat[c] = append(lat[c], time.Since(sent))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d creates failed", n, total)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	t.Logf("%d creates, 64 clients, rate %s: %.0f creates/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		total, map[bool]string{true: strconv.Itoa(rate) + "/s", false: "unpaced"}[rate > 0],
		float64(total)/elapsed.Seconds(), pct(0.50), pct(0.99), pct(1))
	// Where a create's time goes: the group commit's debug lines.
	var groups, size, commitMS, produceMS int
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if !strings.Contains(line, `msg="create group"`) {
			continue
		}
		groups++
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.Atoi(v)
			switch k {
			case "size":
				size += n
			case "commit_ms":
				commitMS += n
			case "produce_ms":
				produceMS += n
			}
		}
	}
	if groups > 0 {
		t.Logf("%d groups: %.1f creates per group, commit %.1f ms, produce %.1f ms on average",
			groups, float64(size)/float64(groups), float64(commitMS)/float64(groups), float64(produceMS)/float64(groups))
	}
}
