package banksim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
)

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testOptions are quick timings for tests.
func testOptions() Options {
	return Options{
		Latency:       Latency{Median: time.Millisecond, P99: 3 * time.Millisecond},
		Hang:          5 * time.Second,
		CompleteDelay: 150 * time.Millisecond,
		ReturnDelay:   time.Second,
		Seed:          1,
	}
}

func start(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

type response struct {
	code   int
	header http.Header
	body   map[string]any
}

func do(t *testing.T, ctx context.Context, method, url string, body any) (response, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	r := response{code: resp.StatusCode, header: resp.Header}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, url, raw, err)
	}
	return r, nil
}

func mustDo(t *testing.T, method, url string, body any) response {
	t.Helper()
	r, err := do(t, context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func transferBody(ref, acct string, amount int64) map[string]any {
	return map[string]any{"reference": ref, "account_number": acct, "account_holder_name": "Budi", "amount": amount, "currency": "IDR"}
}

func TestTransferOutcomes(t *testing.T) {
	_, ts := start(t, testOptions())
	tests := []struct {
		bank, acct string
		amount     int64
		currency   string
		status     connectors.TransferStatus
		failure    string
	}{
		{"bca", "1234567890", 50_000, "IDR", connectors.StatusCompleted, ""},
		{"bca", "1234560000", 50_000, "IDR", connectors.StatusFailed, connectors.FailureInvalidAccount},
		{"bca", "1234561111", 50_000, "IDR", connectors.StatusFailed, connectors.FailureBankRejected},
		{"bca", "1234569999", 50_000, "IDR", connectors.StatusFailed, connectors.FailureAccountClosed},
		{"bca", "1234563333", 50_000, "IDR", connectors.StatusCompleted, ""},
		{"bca", "123456789", 50_000, "IDR", connectors.StatusFailed, connectors.FailureInvalidAccount},
		{"bca", "1234567890", 5_000, "IDR", connectors.StatusFailed, connectors.FailureAmountLimit},
		{"bca", "1234567890", 250_000_000, "IDR", connectors.StatusCompleted, ""},
		{"bni", "1234567890", 250_000_000, "IDR", connectors.StatusFailed, connectors.FailureAmountLimit},
		{"bca", "1234567890", 50_000, "USD", connectors.StatusFailed, connectors.FailureBankRejected},
		{"bri", "123456789012345", 50_000, "IDR", connectors.StatusCompleted, ""},
		// OVO virtual accounts at BCA: e-wallet limits, magic suffixes of the phone number.
		{"bca", "3935881234567890", 50_000, "IDR", connectors.StatusCompleted, ""},
		{"bca", "3935881234560000", 50_000, "IDR", connectors.StatusFailed, connectors.FailureInvalidAccount},
		{"bca", "3935881234567890", 20_000_001, "IDR", connectors.StatusFailed, connectors.FailureAmountLimit},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%d/%s", tt.bank, tt.acct, tt.amount, tt.currency), func(t *testing.T) {
			body := transferBody(fmt.Sprintf("ref-%d", i), tt.acct, tt.amount)
			body["currency"] = tt.currency
			r := mustDo(t, "POST", ts.URL+"/banks/"+tt.bank+"/transfers", body)
			if r.code != 200 || r.body["status"] != string(tt.status) || r.body["failure_code"] != tt.failure || r.body["reference"] != body["reference"] {
				t.Fatalf("got %d %v, want %s %q", r.code, r.body, tt.status, tt.failure)
			}
			// The status endpoint agrees.
			r = mustDo(t, "GET", ts.URL+"/banks/"+tt.bank+"/transfers/"+body["reference"].(string), nil)
			if r.code != 200 || r.body["status"] != string(tt.status) || r.body["failure_code"] != tt.failure {
				t.Fatalf("status: got %d %v", r.code, r.body)
			}
		})
	}
}

func TestTimedOutcomes(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions()
	opts.Now = clock.Now
	opts.CompleteDelay = 2 * time.Second
	opts.ReturnDelay = 5 * time.Second
	opts.Hang = 50 * time.Millisecond // the client outwaits the hang and sees PROCESSING
	_, ts := start(t, opts)

	r := mustDo(t, "POST", ts.URL+"/banks/bca/transfers", transferBody("hang", "1234562222", 50_000))
	if r.body["status"] != "PROCESSING" {
		t.Fatalf("2222 answered %v after its hang, want PROCESSING", r.body)
	}
	r = mustDo(t, "POST", ts.URL+"/banks/bca/transfers", transferBody("ret", "1234563333", 50_000))
	if r.body["status"] != "COMPLETED" {
		t.Fatalf("3333 answered %v", r.body)
	}
	status := func(ref string) any {
		return mustDo(t, "GET", ts.URL+"/banks/bca/transfers/"+ref, nil).body["status"]
	}
	clock.Advance(1999 * time.Millisecond)
	if s := status("hang"); s != "PROCESSING" {
		t.Fatalf("2222 before its delay: %v", s)
	}
	clock.Advance(time.Millisecond)
	if s := status("hang"); s != "COMPLETED" {
		t.Fatalf("2222 after its delay: %v", s)
	}
	if s := status("ret"); s != "COMPLETED" {
		t.Fatalf("3333 before its return: %v", s)
	}
	clock.Advance(3*time.Second + 10*time.Millisecond) // the return delay counts from the answer, after a few ms of latency
	if s := status("ret"); s != "RETURNED" {
		t.Fatalf("3333 after its return delay: %v", s)
	}
}

func TestHangEndsWithClient(t *testing.T) {
	opts := testOptions()
	opts.Hang = time.Minute
	s, ts := start(t, opts)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := do(t, ctx, "POST", ts.URL+"/banks/bca/transfers", transferBody("hang-1", "9876542222", 75_000))
	if err == nil {
		t.Fatal("the 2222 response did not hang")
	}
	if el := time.Since(begin); el > 2*time.Second {
		t.Fatalf("client waited %v", el)
	}
	if n := s.Received("hang-1"); n != 1 {
		t.Fatalf("received %d times, want 1", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		r := mustDo(t, "GET", ts.URL+"/banks/bca/transfers/hang-1", nil)
		if r.body["status"] == "COMPLETED" {
			break
		}
		if r.body["status"] != "PROCESSING" || time.Now().After(deadline) {
			t.Fatalf("status %v", r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A resend is not paid again and does not hang again.
	r := mustDo(t, "POST", ts.URL+"/banks/bca/transfers", transferBody("hang-1", "9876542222", 75_000))
	if r.body["status"] != "COMPLETED" || s.Received("hang-1") != 2 {
		t.Fatalf("resend: %v, received %d", r.body, s.Received("hang-1"))
	}
	// httptest's Close waits for the hanging handler: it must have returned.
}

func TestDuplicates(t *testing.T) {
	s, ts := start(t, testOptions())
	for range 3 {
		r := mustDo(t, "POST", ts.URL+"/banks/bni/transfers", transferBody("dup", "1234567890", 60_000))
		if r.code != 200 || r.body["status"] != "COMPLETED" {
			t.Fatalf("got %d %v", r.code, r.body)
		}
	}
	mustDo(t, "POST", ts.URL+"/banks/bni/transfers", transferBody("once", "1234567890", 40_000))
	// Same reference, different amount, other bank: still not paid again; a conflict.
	r := mustDo(t, "POST", ts.URL+"/banks/bri/transfers", transferBody("once", "1234567890", 99_000))
	if r.body["status"] != "COMPLETED" {
		t.Fatalf("conflicting resend: %v", r.body)
	}
	if got := s.Duplicates(); len(got) != 2 || got["dup"] != 3 || got["once"] != 2 {
		t.Fatalf("Duplicates = %v", got)
	}
	if s.Received("dup") != 3 || s.Received("never") != 0 {
		t.Fatal("Received counts wrong")
	}
	l := s.Ledger()
	if l.Transfers != 2 || l.Receipts != 5 || l.ByBank["bni"].AmountPaid != 100_000 || l.ByBank["bni"].Completed != 2 || l.ByBank["bri"].Transfers != 0 {
		t.Fatalf("ledger %+v", l)
	}
	if !slices.Equal(l.Conflicts, []string{"once"}) {
		t.Fatalf("conflicts %v", l.Conflicts)
	}
	// The reference lives at the bank that first received it.
	if r := mustDo(t, "GET", ts.URL+"/banks/bri/transfers/once", nil); r.code != 404 || r.body["code"] != CodeUnknownReference {
		t.Fatalf("status at another bank: %d %v", r.code, r.body)
	}

	r = mustDo(t, "GET", ts.URL+"/admin/ledger", nil)
	dups, _ := r.body["duplicates"].([]any)
	if r.body["transfers"] != 2.0 || len(dups) != 2 || dups[0].(map[string]any)["reference"] != "dup" || dups[0].(map[string]any)["count"] != 3.0 {
		t.Fatalf("admin ledger %v", r.body)
	}
	r = mustDo(t, "GET", ts.URL+"/admin/ledger/dup", nil)
	if r.body["received"] != 3.0 || r.body["bank"] != "bni" || r.body["status"] != "COMPLETED" {
		t.Fatalf("admin ledger record %v", r.body)
	}
	r = mustDo(t, "GET", ts.URL+"/admin/ledger/never", nil)
	if r.code != 200 || r.body["received"] != 0.0 {
		t.Fatalf("admin ledger record of an unknown reference %d %v", r.code, r.body)
	}
}

func TestBankGate(t *testing.T) {
	s, ts := start(t, testOptions())

	// Unknown bank, and e-wallets (paid through their host bank) have no endpoints.
	for _, bank := range []string{"nope", "ovo"} {
		r := mustDo(t, "POST", ts.URL+"/banks/"+bank+"/transfers", transferBody("x", "1234567890", 50_000))
		if r.code != 404 || r.body["error"] != "unknown bank" || r.body["code"] != CodeUnknownBank {
			t.Fatalf("%s: %d %v", bank, r.code, r.body)
		}
	}

	// Down: 503 to everything, nothing recorded.
	if r := mustDo(t, "POST", ts.URL+"/admin/banks/mandiri/down", nil); r.code != 200 || r.body["down"] != true {
		t.Fatalf("down: %d %v", r.code, r.body)
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/banks/mandiri/transfers"},
		{"GET", "/banks/mandiri/transfers/down-1"},
		{"POST", "/banks/mandiri/inquiries"},
	} {
		r := mustDo(t, c.method, ts.URL+c.path, transferBody("down-1", "1234567890", 50_000))
		if r.code != 503 || r.body["code"] != CodeBankDown {
			t.Fatalf("%s %s on a down bank: %d %v", c.method, c.path, r.code, r.body)
		}
	}
	if s.Received("down-1") != 0 {
		t.Fatal("a down bank recorded a transfer")
	}
	// Other banks are unaffected.
	if r := mustDo(t, "POST", ts.URL+"/banks/bca/transfers", transferBody("up-1", "1234567890", 50_000)); r.code != 200 {
		t.Fatalf("bca while mandiri is down: %d", r.code)
	}
	mustDo(t, "POST", ts.URL+"/admin/banks/mandiri/up", nil)
	if r := mustDo(t, "POST", ts.URL+"/banks/mandiri/transfers", transferBody("down-1", "1234567890", 50_000)); r.code != 200 || s.Received("down-1") != 1 {
		t.Fatalf("after up: %d %v", r.code, r.body)
	}

	// Rate limit of 1/s: a burst of 1, then 429 with Retry-After, not recorded.
	if r := mustDo(t, "POST", ts.URL+"/admin/banks/bsi/config", map[string]any{"rate_limit": 1}); r.code != 200 || r.body["rate_limit"] != 1.0 {
		t.Fatalf("config: %d %v", r.code, r.body)
	}
	if r := mustDo(t, "POST", ts.URL+"/banks/bsi/transfers", transferBody("rl-1", "1234567890", 50_000)); r.code != 200 {
		t.Fatalf("first request under the limit: %d %v", r.code, r.body)
	}
	r := mustDo(t, "POST", ts.URL+"/banks/bsi/transfers", transferBody("rl-2", "1234567890", 50_000))
	if r.code != 429 || r.header.Get("Retry-After") != "1" || r.body["code"] != CodeRateLimited {
		t.Fatalf("over the limit: %d %v %v", r.code, r.header, r.body)
	}
	if s.Received("rl-2") != 0 {
		t.Fatal("a rate-limited transfer was recorded")
	}

	// Malformed requests: 400, nothing recorded.
	for _, body := range []string{`{`, `{"reference":""}`, `{"reference":"` + strings.Repeat("r", MaxReferenceLen+1) + `"}`, `{"reference":"a"} {}`, `[1]`} {
		req, _ := http.NewRequest("POST", ts.URL+"/banks/bca/transfers", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("body %q: %d", body, resp.StatusCode)
		}
	}
	if l := s.Ledger(); l.Transfers != 3 { // up-1, down-1, rl-1
		t.Fatalf("ledger after bad requests: %+v", l)
	}
}

func TestErrorRates(t *testing.T) {
	s, ts := start(t, testOptions())
	if err := s.Configure("cimb", BankConfig{ErrorRateBefore: 1}); err != nil {
		t.Fatal(err)
	}
	r := mustDo(t, "POST", ts.URL+"/banks/cimb/transfers", transferBody("e-before", "1234567890", 50_000))
	if r.code != 500 || s.Received("e-before") != 0 {
		t.Fatalf("error before: %d, received %d", r.code, s.Received("e-before"))
	}
	if err := s.Configure("cimb", BankConfig{ErrorRateAfter: 1}); err != nil {
		t.Fatal(err)
	}
	r = mustDo(t, "POST", ts.URL+"/banks/cimb/transfers", transferBody("e-after", "1234567890", 50_000))
	if r.code != 500 || s.Received("e-after") != 1 {
		t.Fatalf("error after: %d, received %d", r.code, s.Received("e-after"))
	}
	if r := mustDo(t, "GET", ts.URL+"/banks/cimb/transfers/e-after", nil); r.body["status"] != "COMPLETED" {
		t.Fatalf("status after a 500: %v", r.body)
	}

	// Half the transfers processing: some answer PROCESSING, then complete.
	if err := s.Configure("cimb", BankConfig{ProcessingRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	processing := 0
	for i := range 40 {
		r := mustDo(t, "POST", ts.URL+"/banks/cimb/transfers", transferBody(fmt.Sprintf("p-%d", i), "1234567890", 50_000))
		if r.body["status"] == "PROCESSING" {
			processing++
		}
	}
	if processing == 0 || processing == 40 {
		t.Fatalf("%d of 40 processing at rate 0.5", processing)
	}
}

func TestConfigAPI(t *testing.T) {
	s, ts := start(t, testOptions())
	r := mustDo(t, "POST", ts.URL+"/admin/banks/btn/config", map[string]any{
		"latency": map[string]any{"median_ms": 2, "p99_ms": 10}, "error_rate_after": 0.25,
	})
	if r.code != 200 {
		t.Fatalf("%d %v", r.code, r.body)
	}
	cfg, _ := s.Config("btn")
	if cfg.Latency != (Latency{Median: 2 * time.Millisecond, P99: 10 * time.Millisecond}) || cfg.ErrorRateAfter != 0.25 || cfg.ErrorRateBefore != 0 {
		t.Fatalf("config %+v", cfg)
	}
	// Partial: only p99 changes.
	mustDo(t, "POST", ts.URL+"/admin/banks/btn/config", map[string]any{"latency": map[string]any{"p99_ms": 20}})
	if cfg, _ := s.Config("btn"); cfg.Latency.Median != 2*time.Millisecond || cfg.Latency.P99 != 20*time.Millisecond || cfg.ErrorRateAfter != 0.25 {
		t.Fatalf("after partial update %+v", cfg)
	}
	for _, bad := range []map[string]any{
		{"error_rate_before": 1.5},
		{"processing_rate": -0.1},
		{"rate_limit": -1},
		{"latency": map[string]any{"median_ms": 50, "p99_ms": 10}},
		{"error_rate": 0.1}, // typo: unknown field
	} {
		r := mustDo(t, "POST", ts.URL+"/admin/banks/btn/config", bad)
		if r.code != 400 || r.body["code"] != CodeBadRequest || r.body["error"] == "" {
			t.Fatalf("%v: %d %v", bad, r.code, r.body)
		}
	}
	if cfg2, _ := s.Config("btn"); cfg2.ErrorRateAfter != 0.25 {
		t.Fatal("a rejected update changed the config")
	}
	if r := mustDo(t, "GET", ts.URL+"/admin/banks/btn/config", nil); r.body["error_rate_after"] != 0.25 {
		t.Fatalf("GET config %v", r.body)
	}
	if r := mustDo(t, "POST", ts.URL+"/admin/banks/nope/config", map[string]any{}); r.code != 404 {
		t.Fatalf("unknown bank config: %d", r.code)
	}
	if r := mustDo(t, "POST", ts.URL+"/admin/banks/nope/down", nil); r.code != 404 {
		t.Fatalf("unknown bank down: %d", r.code)
	}
	r = mustDo(t, "GET", ts.URL+"/admin/banks", nil)
	if banks, _ := r.body["banks"].([]any); len(banks) != 9 {
		t.Fatalf("admin banks %v", r.body)
	}

	// The mux's own errors are JSON too.
	if r := mustDo(t, "GET", ts.URL+"/nowhere", nil); r.code != 404 || r.body["code"] != CodeNotFound {
		t.Fatalf("unknown path: %d %v", r.code, r.body)
	}
	if r := mustDo(t, "DELETE", ts.URL+"/banks/bca/transfers", nil); r.code != 405 || r.body["code"] != CodeMethodNotAllowed || r.header.Get("Allow") == "" {
		t.Fatalf("wrong method: %d %v %v", r.code, r.header, r.body)
	}
	if err := s.SetDown("nope", true); err == nil {
		t.Fatal("SetDown of an unknown bank")
	}
	if err := s.Configure("bca", BankConfig{ErrorRateAfter: 2}); err == nil || !strings.Contains(err.Error(), "error_rate_after") {
		t.Fatalf("Configure error %v does not name the setting", err)
	}
}

func TestInquiry(t *testing.T) {
	_, ts := start(t, testOptions())
	tests := []struct {
		bank, acct, status string
		named              bool
	}{
		{"bca", "1234567890", "VALID", true},
		{"bca", "1234560000", "INVALID", false},
		{"bca", "1234569999", "CLOSED", false},
		{"bca", "12345", "INVALID", false},
		{"bca", "3935881234567890", "VALID", true}, // an OVO VA
		{"bri", "123456789012345", "VALID", true},
	}
	for _, tt := range tests {
		r := mustDo(t, "POST", ts.URL+"/banks/"+tt.bank+"/inquiries", map[string]any{"account_number": tt.acct})
		name, _ := r.body["account_holder_name"].(string)
		if r.code != 200 || r.body["status"] != tt.status || r.body["account_number"] != tt.acct || (name != "") != tt.named {
			t.Errorf("%s %s: %d %v", tt.bank, tt.acct, r.code, r.body)
		}
		if tt.named && name != strings.ToUpper(name) {
			t.Errorf("name %q is not upper case", name)
		}
		// Deterministic.
		again := mustDo(t, "POST", ts.URL+"/banks/"+tt.bank+"/inquiries", map[string]any{"account_number": tt.acct})
		if again.body["account_holder_name"] != r.body["account_holder_name"] {
			t.Errorf("%s: name changed between inquiries", tt.acct)
		}
	}
	if r := mustDo(t, "POST", ts.URL+"/banks/bca/inquiries", map[string]any{}); r.code != 400 {
		t.Errorf("inquiry without account: %d", r.code)
	}
	names := map[string]bool{}
	for i := range 200 {
		names[holderName(fmt.Sprintf("%010d", i))] = true
	}
	if len(names) < 100 {
		t.Errorf("only %d names for 200 accounts", len(names))
	}
}

func TestLatencyDistribution(t *testing.T) {
	l := Latency{Median: 100 * time.Millisecond, P99: time.Second}
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 50_000
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = l.sample(rng.NormFloat64())
	}
	slices.Sort(ds)
	median, p99 := ds[n/2], ds[n*99/100]
	if median < 90*time.Millisecond || median > 110*time.Millisecond {
		t.Errorf("median %v", median)
	}
	if p99 < 850*time.Millisecond || p99 > 1150*time.Millisecond {
		t.Errorf("p99 %v", p99)
	}
	if ds[n-1] > 2*time.Second || ds[0] <= 0 {
		t.Errorf("range %v..%v", ds[0], ds[n-1])
	}
	if got := (Latency{Median: 5 * time.Millisecond}).sample(3); got != 5*time.Millisecond {
		t.Errorf("no spread: %v", got)
	}
	if got := (Latency{}).sample(3); got != 0 {
		t.Errorf("zero latency: %v", got)
	}
}

func TestBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBucket(2, now)
	for i := range 2 {
		if _, ok := b.take(now); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	wait, ok := b.take(now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("empty bucket: %v %v", wait, ok)
	}
	if _, ok := b.take(now.Add(500 * time.Millisecond)); !ok {
		t.Fatal("no token after refill")
	}
	var unlimited bucket
	for range 1000 {
		if _, ok := unlimited.take(now); !ok {
			t.Fatal("unlimited bucket refused")
		}
	}
}

func TestConcurrentTransfers(t *testing.T) {
	s, ts := start(t, testOptions())
	const refs, sends = 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, refs*sends)
	banks := []string{"bca", "bni", "bri", "mandiri"}
	for i := range refs {
		for range sends {
			wg.Go(func() {
				bank := banks[i%len(banks)]
				acct := fmt.Sprintf("12345678%02d", i)
				r, err := do(t, context.Background(), "POST", ts.URL+"/banks/"+bank+"/transfers", transferBody(fmt.Sprintf("c-%d", i), acct, 10_000+int64(i)))
				if err != nil {
					errs <- err
					return
				}
				if r.code != 200 || r.body["status"] != "COMPLETED" {
					errs <- fmt.Errorf("c-%d: %d %v", i, r.code, r.body)
				}
			})
		}
	}
	// Admin reads race with the sends.
	wg.Go(func() {
		for range 20 {
			_ = s.Ledger()
			_ = s.Duplicates()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l := s.Ledger()
	if l.Transfers != refs || l.Receipts != refs*sends || len(l.Duplicates) != refs || len(l.Conflicts) != 0 {
		t.Fatalf("ledger: transfers %d receipts %d duplicates %d conflicts %d", l.Transfers, l.Receipts, len(l.Duplicates), len(l.Conflicts))
	}
	var paid int64
	for _, b := range l.ByBank {
		paid += b.AmountPaid
	}
	if want := int64(refs*10_000 + refs*(refs-1)/2); paid != want {
		t.Fatalf("paid %d, want %d (each reference once)", paid, want)
	}
}

func TestServeShutsDown(t *testing.T) {
	opts := testOptions()
	opts.Hang = time.Minute
	s := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, s) }()
	url := "http://" + ln.Addr().String()
	for _, probe := range []string{"/healthz", "/readyz"} {
		if r := mustDo(t, "GET", url+probe, nil); r.code != 200 {
			t.Fatalf("%s %d", probe, r.code)
		}
	}
	// A hanging request must not hold up shutdown.
	hung := make(chan struct{})
	go func() {
		defer close(hung)
		_, _ = do(t, context.Background(), "POST", url+"/banks/bca/transfers", transferBody("sd", "1234562222", 50_000))
	}()
	for s.Received("sd") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	<-hung

	if err := ListenAndServe(context.Background(), "127.0.0.1:-1", s); err == nil {
		t.Fatal("ListenAndServe on a bad address")
	}
}
