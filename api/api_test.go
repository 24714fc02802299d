package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/connectors/httpbank"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

const operatorToken = "op-test-token-0123456789"

type env struct {
	pool    *pgxpool.Pool
	url     string
	kafka   *kgo.Client
	topics  events.Topics
	s       *api.Server
	clock   *clock
	logs    *syncBuffer
	srv     *httptest.Server
	op      *httptest.Server
	key     string
	bankURL string
	reports *reports.Store
}

// clock is the injected clock: tests move it instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// trustedProxies of every test server: 10.0.0.0/8 and 2001:db8:ffff::/48.
var trustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, url := fixture.Postgres(t)
	cl, err := processor.NewClient(testenv.Kafka(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	topics := events.NewTopics(testenv.TopicPrefix(t))
	if err := processor.EnsureTopics(context.Background(), cl, 2, topics.All()...); err != nil {
		t.Fatal(err)
	}
	banks := httptest.NewServer(banksim.New(banksim.Options{}).Handler())
	t.Cleanup(banks.Close)
	e := &env{pool: pool, url: url, kafka: cl, topics: topics, clock: &clock{t: time.Now()}, logs: &syncBuffer{}, bankURL: banks.URL}
	e.reports = fixture.Reports(t)
	e.s = e.newServer(pool)
	e.srv, e.op = httptest.NewServer(e.s.Handler()), httptest.NewServer(e.s.OperatorHandler())
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.op.Close)
	e.key = fixture.Merchant(t, pool, "m1", 1_000_000_000, api.DefaultSettings)
	return e
}

// newServer is one API instance on pool: the env's clock and log, the test
// trusted proxies, and default rate limits high enough for the tables of
// requests (the rate-limit tests set their own per merchant).
func (e *env) newServer(pool *pgxpool.Pool) *api.Server {
	return &api.Server{
		Payouts: payout.NewStore(pool), Merchants: merchant.NewStore(pool), Ledger: ledger.NewStore(pool),
		Kafka: e.kafka, Topics: e.topics, Log: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OperatorToken: operatorToken, Now: e.clock.Now, KeyGracePeriod: time.Hour,
		TrustedProxies: trustedProxies, Limits: merchant.Limits{CreatePerSecond: 1000, ReadPerSecond: 1000},
		Bank: httpbank.New(e.bankURL), Callbacks: callbacks.NewStore(pool), Reports: e.reports,
		// Test hosts resolve to a documentation address: nothing is sent there.
		CallbackPolicy: callbacks.Policy{Resolver: publicResolver{}},
	}
}

// call sends one merchant API request with key (none when empty); a JSON
// body gets its Content-Type.
func (e *env) call(t *testing.T, key, method, path, body string) answer {
	t.Helper()
	return e.callWith(t, key, method, e.srv.URL+path, body, nil)
}

func (e *env) callWith(t *testing.T, key, method, url, body string, mutate func(*http.Request)) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if mutate != nil {
		mutate(req)
	}
	return do(t, req)
}

// operatorCall sends one operator API request.
func (e *env) operatorCall(t *testing.T, method, path, body string) answer {
	t.Helper()
	return e.callWith(t, "", method, e.op.URL+path, body, func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+operatorToken)
	})
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAgainstSpec(t, req, resp, raw)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

const validBody = `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":150000,"description":"ok"}`

func TestCreateRejectsBadInputAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", 300)
	cases := []struct {
		name   string
		body   string
		mutate func(*http.Request)
		status int
		code   string
		field  string
	}{
		{"empty object", `{}`, nil, 422, "VALIDATION_ERROR", "reference_id"},
		{"missing amount", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890"}`, nil, 422, "VALIDATION_ERROR", "amount"},
		{"amount as string", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":"150000"}`, nil, 422, "VALIDATION_ERROR", "amount"},
		{"amount as float", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":1500.5}`, nil, 422, "VALIDATION_ERROR", "amount"},
		{"amount over int64", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":92233720368547758070}`, nil, 422, "VALIDATION_ERROR", "amount"},
		{"negative amount", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":-5}`, nil, 422, "VALIDATION_ERROR", "amount"},
		{"zero amount", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":0}`, nil, 422, "VALIDATION_ERROR", "amount"},
		{"unknown bank", `{"reference_id":"r1","bank_code":"xyz","account_number":"1234567890","amount":150000}`, nil, 422, "VALIDATION_ERROR", "bank_code"},
		{"account with letters", `{"reference_id":"r1","bank_code":"bca","account_number":"12345abc90","amount":150000}`, nil, 422, "VALIDATION_ERROR", "account_number"},
		{"long reference", `{"reference_id":"` + long + `","bank_code":"bca","account_number":"1234567890","amount":150000}`, nil, 422, "VALIDATION_ERROR", "reference_id"},
		{"long description", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":150000,"description":"` + long + `"}`, nil, 422, "VALIDATION_ERROR", "description"},
		{"control character", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":150000,"description":"a\u0007b"}`, nil, 422, "VALIDATION_ERROR", "description"},
		{"wrong currency", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":150000,"currency":"USD"}`, nil, 422, "VALIDATION_ERROR", "currency"},
		{"unknown field", `{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":150000,"admin":true}`, nil, 422, "VALIDATION_ERROR", "admin"},
		{"invalid JSON", `{"reference_id":`, nil, 400, "INVALID_JSON", ""},
		{"not an object", `[1,2]`, nil, 400, "INVALID_JSON", ""},
		{"trailing data", validBody + `{}`, nil, 400, "INVALID_JSON", ""},
		{"duplicate key", `{"reference_id":"r1","reference_id":"r2","bank_code":"bca","account_number":"1234567890","amount":150000}`, nil, 400, "INVALID_JSON", ""},
		{"not UTF-8", "{\"reference_id\":\"r\xff\",\"bank_code\":\"bca\",\"account_number\":\"1234567890\",\"amount\":150000}", nil, 400, "INVALID_JSON", ""},
		{"body over the limit", `{"reference_id":"r1","description":"` + strings.Repeat("y", 20<<10) + `"}`, nil, 413, "PAYLOAD_TOO_LARGE", ""},
		{"wrong content type", validBody, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"no idempotency key", validBody, func(r *http.Request) { r.Header.Del("Idempotency-Key") }, 400, "IDEMPOTENCY_KEY_REQUIRED", ""},
		{"idempotency key with spaces", validBody, func(r *http.Request) { r.Header.Set("Idempotency-Key", "a b") }, 400, "IDEMPOTENCY_KEY_REQUIRED", ""},
		{"no auth", validBody, func(r *http.Request) { r.Header.Del("Authorization") }, 401, "UNAUTHORIZED", ""},
		{"unknown key", validBody, func(r *http.Request) { r.SetBasicAuth("sk_sandbox_"+strings.Repeat("0", 64), "") }, 401, "UNAUTHORIZED", ""},
		{"production prefix on a sandbox key", validBody, func(r *http.Request) { r.SetBasicAuth(strings.Replace(e.key, "sk_sandbox_", "sk_live_", 1), "") }, 401, "UNAUTHORIZED", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/disbursements", bytes.NewBufferString(c.body))
			req.SetBasicAuth(e.key, "")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "key-"+c.name[:3])
			if c.mutate != nil {
				c.mutate(req)
			}
			a := do(t, req)
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("got %d %s, want %d %s: %s", a.status, a.code(), c.status, c.code, a.raw)
			}
			if a.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if c.field != "" && !strings.Contains(a.raw, `"field":"`+c.field) {
				t.Errorf("error does not name field %s: %s", c.field, a.raw)
			}
		})
	}
	// Nothing was written anywhere.
	var payouts, entries int
	if err := e.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM disbursements), (SELECT count(*) FROM journal_entries)`).Scan(&payouts, &entries); err != nil {
		t.Fatal(err)
	}
	if payouts != 0 || entries != 1 {
		t.Fatalf("bad input wrote %d payouts and %d journal entries (want 0 and the 1 deposit)", payouts, entries)
	}
	offs, err := kadm.NewClient(e.kafka).ListEndOffsets(context.Background(), e.topics.Requests)
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("bad input published to %s partition %d", o.Topic, o.Partition)
		}
	})

	// And a valid request after all that is accepted.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/disbursements", bytes.NewBufferString(validBody))
	req.SetBasicAuth(e.key, "")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "good")
	if a := do(t, req); a.status != 202 {
		t.Fatalf("valid request: %d %s", a.status, a.raw)
	}
}

func TestConcurrentSameIdempotencyKeyMakesOnePayout(t *testing.T) {
	e := newEnv(t)
	const n = 40
	ids := make(chan string, n)
	for i := 0; i < n; i++ {
		go func() {
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/disbursements", bytes.NewBufferString(validBody))
			req.SetBasicAuth(e.key, "")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "same-key")
			a := do(t, req)
			id, _ := a.body["id"].(string)
			if a.status != 202 {
				id = "status " + a.raw
			}
			ids <- id
		}()
	}
	first := <-ids
	for i := 1; i < n; i++ {
		if id := <-ids; id != first {
			t.Fatalf("concurrent replays answered %q and %q", first, id)
		}
	}
	var count int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM disbursements`).Scan(&count)
	if count != 1 {
		t.Fatalf("%d payouts for one idempotency key", count)
	}
	fixture.Audit(t, e.pool)
}

func TestOperatorRejectsBadInputAndKeepsLedger(t *testing.T) {
	e := newEnv(t)
	ledgerState := func() string {
		var s string
		_ = e.pool.QueryRow(context.Background(), `SELECT string_agg(kind || ':' || balance, ',' ORDER BY id) FROM accounts`).Scan(&s)
		return s
	}
	before := ledgerState()
	cases := []struct {
		name, method, path, body, token string
		status                          int
	}{
		{"no token", "POST", "/operator/v1/merchants/m1/topups", `{"amount":100}`, "", 401},
		{"wrong token", "POST", "/operator/v1/merchants/m1/topups", `{"amount":100}`, "nope-nope-nope-nope", 401},
		{"negative top-up", "POST", "/operator/v1/merchants/m1/topups", `{"environment":"sandbox","amount":-100}`, operatorToken, 422},
		{"overflowing top-up", "POST", "/operator/v1/merchants/m1/topups", `{"environment":"sandbox","amount":9223372036854775808}`, operatorToken, 422},
		{"unknown merchant", "POST", "/operator/v1/merchants/nobody/topups", `{"environment":"sandbox","amount":100}`, operatorToken, 404},
		{"inactive production", "POST", "/operator/v1/merchants/m1/topups", `{"environment":"production","amount":100}`, operatorToken, 404},
		{"bad environment", "POST", "/operator/v1/merchants/m1/topups", `{"environment":"staging","amount":100}`, operatorToken, 422},
		{"top-up without Idempotency-Key", "POST", "/operator/v1/merchants/m1/topups", `{"environment":"sandbox","amount":100}`, operatorToken, 400},
		{"bad merchant id", "POST", "/operator/v1/merchants", `{"id":"../x","name":"x"}`, operatorToken, 422},
		{"fee over 100%", "PUT", "/operator/v1/merchants/m1/environments/sandbox/settings", `{"fee_bps":20000}`, operatorToken, 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, e.op.URL+c.path, strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if !strings.Contains(c.name, "without Idempotency-Key") {
				req.Header.Set("Idempotency-Key", "bad-"+strings.ReplaceAll(c.name, " ", "-"))
			}
			if a := do(t, req); a.status != c.status || a.code() == "" {
				t.Fatalf("got %d %s, want %d with an error code", a.status, a.raw, c.status)
			}
		})
	}
	if after := ledgerState(); after != before {
		t.Fatalf("ledger changed: %s -> %s", before, after)
	}
	fixture.Audit(t, e.pool)
}

func TestOperatorInvoiceBilling(t *testing.T) {
	e := newEnv(t)
	calls := 0
	op := func(method, path, body string) answer {
		req, _ := http.NewRequest(method, e.op.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+operatorToken)
		calls++
		req.Header.Set("Idempotency-Key", "invoice-test-"+strconv.Itoa(calls))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		return do(t, req)
	}
	base := "/operator/v1/merchants/m1/environments/sandbox"
	if a := op("POST", base+"/invoices/close", ""); a.status != 409 {
		t.Fatalf("closing a deposit-billed environment: %d %s", a.status, a.raw)
	}
	if a := op("PUT", base+"/billing", `{"billing":"invoice","credit_limit":0}`); a.status != 422 {
		t.Fatalf("invoice without credit: %d %s", a.status, a.raw)
	}
	a := op("PUT", base+"/billing", `{"billing":"invoice","credit_limit":5000000}`)
	if a.status != 200 || a.body["billing"] != "invoice" || a.body["available"] != float64(5_000_000) {
		t.Fatalf("switch to invoice: %d %s", a.status, a.raw)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/balance", nil)
	req.SetBasicAuth(e.key, "")
	if b := do(t, req); b.body["billing"] != "invoice" || b.body["invoice"] == nil {
		t.Fatalf("merchant balance: %s", b.raw)
	}
	inv := op("POST", base+"/invoices/close", "")
	if inv.status != 200 || inv.body["status"] != "ISSUED" {
		t.Fatalf("close: %d %s", inv.status, inv.raw)
	}
	path := base + "/invoices/" + strconv.Itoa(int(inv.body["id"].(float64))) + "/pay"
	if p := op("POST", path, ""); p.status != 200 || p.body["status"] != "PAID" {
		t.Fatalf("pay: %d %s", p.status, p.raw)
	}
	if p := op("POST", path, ""); p.status != 409 {
		t.Fatalf("pay twice: %d %s", p.status, p.raw)
	}
	if l := op("GET", base+"/invoices", ""); l.status != 200 || len(l.body["data"].([]any)) != 2 {
		t.Fatalf("list: %d %s", l.status, l.raw)
	}
	fixture.Audit(t, e.pool)
}

// publicResolver resolves every host name to a public address (only the
// URL check asks it; these tests deliver nothing), except names of the form
// *.loopback.test, which resolve to 127.0.0.1 (a name pointing inside).
type publicResolver struct{}

func (publicResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if strings.HasSuffix(host, ".loopback.test") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
}
