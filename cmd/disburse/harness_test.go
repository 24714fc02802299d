package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/connectors/httpbank"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/dispatch"
	"github.com/disburse/disburse/processor/statement"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

const testOperatorToken = "op-test-token-0123456789"

// pipeline is the whole service in the test process: the API on httptest,
// both stages, the sandbox banks over HTTP, on a fresh database.
type pipeline struct {
	pool     *pgxpool.Pool
	topics   events.Topics
	kafka    *kgo.Client
	bank     *banksim.Server
	api      *httptest.Server
	operator *httptest.Server
	server   *api.Server // the API's server behind api and operator
	guard    *connectors.Guard
	banks    *connectors.Banks
	meter    *bankMeter
	// prodBank stands in for the production gateway (a second sandbox bank
	// server) when the pipeline was started with production; prodGuard is
	// the workers' connector to it and prodURL its URL.
	prodBank  *banksim.Server
	prodGuard *connectors.Guard
	prodURL   string
	reports   *reports.Store
	key       string // sandbox key of merchant m1
	pgURL     string // the database's URL
	bankURL   string // the sandbox banks' URL
	stopped   bool
	stop      func()
}

// fastBanks are sandbox banks quick enough for tests but still variable.
func fastBanks() banksim.Options {
	return banksim.Options{
		Latency:       banksim.Latency{Median: 5 * time.Millisecond, P99: 40 * time.Millisecond},
		Hang:          3 * time.Second,
		CompleteDelay: 300 * time.Millisecond,
		ReturnDelay:   600 * time.Millisecond,
	}
}

// kfakeBrokers starts franz-go's in-process broker.
func kfakeBrokers(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// pipelineConfig is what a test may change before the pipeline starts.
type pipelineConfig struct {
	banks    banksim.Options
	profiles connectors.Profiles
	now      func() time.Time
	stage    func(*dispatch.Stage)
	// statement adjusts the statement follower and the scheduled
	// reconciliation of the dispatch worker.
	statement func(*statement.Follower, *statement.Reconciler)
	// production: the workers get a production gateway, a second sandbox
	// bank server with the same options and profiles. Without it,
	// production has no gateway (its fallback profiles are profiles).
	production bool
	// authCacheTTL: the API's --auth-cache-ttl (0: every call looks its key up).
	authCacheTTL time.Duration
}

// testProfiles are the banks' profiles with test timings: 1 s calls, a
// breaker over a 4 s window that opens for 1 s, short retries, no windows.
func testProfiles() connectors.Profiles {
	ps := connectors.DefaultProfiles()
	for code, p := range ps {
		p.Timeout = time.Second
		p.MaxInFlight = 8
		p.RateLimit = 0
		p.SendAttempts = 3
		p.RetryBase, p.RetryMax = 20*time.Millisecond, 200*time.Millisecond
		p.Breaker = connectors.BreakerSettings{Window: 4 * time.Second, Buckets: 4, MinRequests: 5, FailureRatio: 0.5, OpenFor: time.Second, HalfOpenProbes: 2}
		p.Windows = nil
		ps[code] = p
	}
	return ps
}

func startPipeline(t testing.TB, brokers []string, prefix string, tune ...func(*pipelineConfig)) *pipeline {
	t.Helper()
	cfg := pipelineConfig{banks: fastBanks(), profiles: testProfiles()}
	for _, f := range tune {
		f(&cfg)
	}
	ctx := context.Background()
	_, url := fixture.Postgres(t)
	pool, err := openPostgres(ctx, url) // the pool size the binary uses
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p := &pipeline{pool: pool, topics: events.NewTopics(prefix), pgURL: url}
	p.key = fixture.Merchant(t, pool, "m1", 1_000_000_000, api.DefaultSettings)

	p.kafka, err = processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	if err := processor.EnsureTopics(ctx, p.kafka, 4, p.topics.All()...); err != nil {
		t.Fatal(err)
	}
	p.bank = banksim.New(cfg.banks)
	p.meter = newBankMeter(p.bank.Handler())
	bankSrv := httptest.NewServer(p.meter)
	p.bankURL = bankSrv.URL
	p.guard = connectors.NewGuard(httpbank.New(bankSrv.URL, httpbank.WithTimeout(0)), cfg.profiles, cfg.now)
	byEnv := map[string]*connectors.Guard{payout.Sandbox: p.guard}
	prodClose := func() {}
	if cfg.production {
		p.prodBank = banksim.New(cfg.banks)
		prodSrv := httptest.NewServer(p.prodBank.Handler())
		prodClose = prodSrv.Close
		p.prodURL = prodSrv.URL
		p.prodGuard = connectors.NewGuard(httpbank.New(prodSrv.URL, httpbank.WithTimeout(0)), cfg.profiles, cfg.now)
		byEnv[payout.Production] = p.prodGuard
	}
	p.banks = connectors.NewBanks(byEnv, cfg.profiles)

	stageCtx, cancel := context.WithCancel(ctx)
	var st stages
	p.reports = fixture.Reports(t)
	deps := stageDeps{brokers: brokers, pool: pool, groupPrefix: prefix, topics: p.topics, banks: p.banks, reports: p.reports,
		callbacks: callbackConfig{allowInsecureSandbox: true, attemptTimeout: 2 * time.Second, retryBase: 100 * time.Millisecond, retryMax: time.Second},
		tune: func(st *dispatch.Stage) {
			st.UnknownWindow = 5 * time.Second
			st.ParkBackoff = dispatch.BackoffConfig{Base: 200 * time.Millisecond, Max: time.Second}
			st.CommitEvery = 100 * time.Millisecond
			st.Reconcile = dispatch.ReconcileConfig{Every: 200 * time.Millisecond, AlertAfter: time.Minute}
			if cfg.stage != nil {
				cfg.stage(st)
			}
		},
		tuneStatement: func(f *statement.Follower, rc *statement.Reconciler) {
			f.Every, f.SettleAfter, f.Lease = 100*time.Millisecond, 8*time.Second, 10*time.Second
			if cfg.statement != nil {
				cfg.statement(f, rc)
			}
		}}
	for _, name := range stageNames {
		if err := st.start(stageCtx, name, deps); err != nil {
			t.Fatal(err)
		}
	}
	apiSrv := newAPIServer(pool, p.kafka, p.topics, testOperatorToken, p.guard, time.Minute, 0.8, deps.callbacks)
	apiSrv.Profiles = cfg.profiles
	apiSrv.Banks = inquiryCaches(p.banks, time.Minute)
	apiSrv.Now = cfg.now
	apiSrv.Reports = p.reports
	apiSrv.AuthCacheTTL = cfg.authCacheTTL
	// The pipeline tests and benchmarks send faster than a merchant's default
	// budget; the rate limits have tests of their own (api/access_test.go).
	apiSrv.Limits = merchant.Limits{CreatePerSecond: 1_000_000, ReadPerSecond: 1_000_000}
	p.server = apiSrv
	p.api = httptest.NewServer(apiSrv.Handler())
	p.operator = httptest.NewServer(apiSrv.OperatorHandler())
	p.stop = func() {
		if p.stopped {
			return
		}
		p.stopped = true
		p.api.Close()
		p.operator.Close()
		cancel()
		if err := st.wait(); err != nil {
			t.Errorf("stages: %v", err)
		}
		bankSrv.Close()
		prodClose()
		p.kafka.Close()
	}
	t.Cleanup(p.stop)
	return p
}

// call makes an API request with the key and returns status and decoded body.
func call(t testing.TB, base, key, method, path string, headers map[string]string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out, resp.Header
}

func payoutBody(ref, account string, amount int64) map[string]any {
	return map[string]any{"reference_id": ref, "bank_code": "bca", "account_number": account, "amount": amount, "description": "test payout"}
}

// waitStatus polls a payout until it is terminal or the deadline passes.
func waitStatus(t testing.TB, base, key, id string, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		_, d, _ := call(t, base, key, "GET", "/v1/disbursements/"+id, nil, nil)
		last = d
		if s, _ := d["status"].(string); s == want {
			return d
		} else if s == "COMPLETED" || s == "FAILED" || s == "REVERSED" {
			if want != "REVERSED" || s != "COMPLETED" {
				t.Fatalf("payout %s ended %s (%v), want %s", id, s, d["failure_code"], want)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("payout %s did not reach %s in time; last %v", id, want, last)
	return nil
}

// endOffsets sums the end offsets of a topic: how many records it ever got.
func endOffsets(t testing.TB, cl *kgo.Client, topic string) int64 {
	t.Helper()
	offs, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func mustNumber(t testing.TB, m map[string]any, field string) int64 {
	t.Helper()
	f, ok := m[field].(float64)
	if !ok {
		t.Fatalf("field %s missing in %v", field, m)
	}
	return int64(f)
}

var _ = fmt.Sprintf

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// bankMeter wraps the sandbox banks' handler and counts, per bank, the
// transfer requests in progress (and their peak) and the 429 answers.
type bankMeter struct {
	next http.Handler
	mu   sync.Mutex
	cur  map[string]int
	peak map[string]int
	r429 map[string]int
}

func newBankMeter(next http.Handler) *bankMeter {
	return &bankMeter{next: next, cur: map[string]int{}, peak: map[string]int{}, r429: map[string]int{}}
}

type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (c *codeRecorder) WriteHeader(code int) { c.code = code; c.ResponseWriter.WriteHeader(code) }

func (m *bankMeter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 3 || parts[0] != "banks" {
		m.next.ServeHTTP(w, r)
		return
	}
	bank := parts[1]
	m.mu.Lock()
	m.cur[bank]++
	m.peak[bank] = max(m.peak[bank], m.cur[bank])
	m.mu.Unlock()
	rec := &codeRecorder{ResponseWriter: w, code: 200}
	m.next.ServeHTTP(rec, r)
	m.mu.Lock()
	m.cur[bank]--
	if rec.code == http.StatusTooManyRequests {
		m.r429[bank]++
	}
	m.mu.Unlock()
}

// Peak is the most requests to bank that were in progress at once.
func (m *bankMeter) Peak(bank string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak[bank]
}

// RateLimited counts the bank's 429 answers.
func (m *bankMeter) RateLimited(bank string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r429[bank]
}
