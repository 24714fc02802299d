package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/internal/fixture"
)

// TestOperatorTopUpCreditsOncePerKey: a top-up retried with its
// Idempotency-Key, one after another or many at once, credits once and
// every retry gets the first answer; the key with another body is refused.
func TestOperatorTopUpCreditsOncePerKey(t *testing.T) {
	e := newEnv(t)
	available := func() int64 {
		var v int64
		if err := e.pool.QueryRow(context.Background(), `SELECT balance FROM accounts
			WHERE merchant_id = 'm1' AND environment = 'sandbox' AND kind = 'available'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	topUp := func(key, body string) answer {
		return e.callWith(t, "", "POST", e.op.URL+"/operator/v1/merchants/m1/topups", body, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+operatorToken)
			if key != "" {
				r.Header.Set("Idempotency-Key", key)
			}
		})
	}
	start := available()
	first := topUp("topup-1", `{"environment":"sandbox","amount":700}`)
	if first.status != 200 || first.body["available"] != float64(start+700) {
		t.Fatalf("first top-up: %d %s", first.status, first.raw)
	}
	again := topUp("topup-1", `{"environment":"sandbox","amount":700}`)
	if again.status != 200 || again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s (replayed %q), want the first answer %s", again.status, again.raw, again.header.Get("Idempotent-Replayed"), first.raw)
	}
	if a := topUp("topup-1", `{"environment":"sandbox","amount":701}`); a.status != 409 || a.code() != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("same key, other amount: %d %s", a.status, a.raw)
	}
	if a := topUp("", `{"environment":"sandbox","amount":700}`); a.status != 400 || a.code() != "IDEMPOTENCY_KEY_REQUIRED" {
		t.Fatalf("no key: %d %s", a.status, a.raw)
	}
	if got := available(); got != start+700 {
		t.Fatalf("available %d after one top-up of 700 and its retries, want %d", got, start+700)
	}

	// Concurrent retries of one call: one credit, one answer.
	const n = 12
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = topUp("topup-2", `{"environment":"sandbox","amount":5000,"memo":"wire 42"}`)
		}()
	}
	wg.Wait()
	replayed := 0
	for _, a := range answers {
		if a.status != 200 || a.raw != answers[0].raw {
			t.Fatalf("concurrent retry: %d %s, others %s", a.status, a.raw, answers[0].raw)
		}
		if a.header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Errorf("%d of %d concurrent retries replayed, want %d", replayed, n, n-1)
	}
	if got := available(); got != start+5700 {
		t.Fatalf("available %d after concurrent retries, want %d", got, start+5700)
	}
	if c := fixture.Count(t, e.pool, `SELECT count(*) FROM journal_entries WHERE kind = 'deposit' AND memo = 'wire 42'`); c != 1 {
		t.Fatalf("%d deposit entries for one top-up", c)
	}
	fixture.Audit(t, e.pool)
}

// TestOperatorInvoiceCallsOncePerKey: closing an invoice period retried
// with its key closes one period.
func TestOperatorInvoiceCallsOncePerKey(t *testing.T) {
	e := newEnv(t)
	op := func(method, path, body, key string) answer {
		return e.callWith(t, "", method, e.op.URL+path, body, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+operatorToken)
			r.Header.Set("Idempotency-Key", key)
		})
	}
	base := "/operator/v1/merchants/m1/environments/sandbox"
	if a := op("PUT", base+"/billing", `{"billing":"invoice","credit_limit":5000000}`, "k"); a.status != 200 {
		t.Fatalf("billing: %d %s", a.status, a.raw)
	}
	first := op("POST", base+"/invoices/close", "", "close-1")
	second := op("POST", base+"/invoices/close", "", "close-1")
	if first.status != 200 || second.raw != first.raw || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("close and retry: %d %s / %d %s", first.status, first.raw, second.status, second.raw)
	}
	if c := fixture.Count(t, e.pool, `SELECT count(*) FROM invoices WHERE status = 'ISSUED'`); c != 1 {
		t.Fatalf("%d invoices issued by one call retried", c)
	}
	fixture.Audit(t, e.pool)
}

// rawExchange sends raw bytes on a new connection and reads one answer.
func rawExchange(t *testing.T, addr, request string) (*http.Response, map[string]any) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if request != "" {
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to %.60q: %v", request, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("answer to %.60q is not JSON: %d %s", request, resp.StatusCode, raw)
	}
	return resp, body
}

// TestNetHTTPErrorsAreJSON: what net/http answers itself (oversized
// headers, malformed requests, headers that stop coming) has the JSON error
// shape and a request id, like every handler error.
func TestNetHTTPErrorsAreJSON(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(e.s.Handler())
	srv.Listener = api.Listener(srv.Listener)
	srv.Config.ConnContext = api.ConnContext
	srv.Config.MaxHeaderBytes = 16 << 10
	srv.Config.ReadHeaderTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	cases := []struct {
		name, request string
		status        int
		code          string
	}{
		{"headers over the limit", "GET /v1/balance HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431, "HEADERS_TOO_LARGE"},
		{"no Host header", "GET /v1/balance HTTP/1.1\r\n\r\n", 400, "MALFORMED_REQUEST"},
		{"garbage request line", "HELLO\r\n\r\n", 400, "MALFORMED_REQUEST"},
		{"bad header line", "GET /v1/balance HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, "MALFORMED_REQUEST"},
		{"unsupported protocol", "GET /v1/balance HTTP/9.9\r\nHost: x\r\n\r\n", 505, "MALFORMED_REQUEST"},
		{"headers stop coming", "GET /v1/balance HTTP/1.1\r\nHost: x\r\n", 408, "REQUEST_TIMEOUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, c.request)
			errBody, _ := body["error"].(map[string]any)
			if resp.StatusCode != c.status || errBody["code"] != c.code || errBody["message"] == "" {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, body, c.status, c.code)
			}
			if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
	// A connection idle between requests is closed without an answer, and
	// a good request on a wrapped connection is answered as ever.
	resp, body := rawExchange(t, addr, "GET /v1/balance HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 401 || body["error"] == nil {
		t.Fatalf("plain request: %d %v", resp.StatusCode, body)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("an idle connection got %d bytes (err %v)", n, err)
	}
}
