package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/internal/fixture"
)

// counter reads a Prometheus counter of the default registry (0 when absent).
func counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestKeyRotationGracePeriodAndRevocation(t *testing.T) {
	e := newEnv(t)
	old := e.key
	a := e.call(t, old, "POST", "/v1/settings/secret-key/rotate", "")
	if a.status != 201 {
		t.Fatalf("rotate: %d %s", a.status, a.raw)
	}
	fresh, _ := a.body["secret_key"].(string)
	if !strings.HasPrefix(fresh, "sk_sandbox_") || fresh == old {
		t.Fatalf("rotate returned key %q", fresh)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Error("a response carrying a key must not be cached")
	}
	for _, k := range []string{old, fresh} {
		if a := e.call(t, k, "GET", "/v1/balance", ""); a.status != 200 {
			t.Fatalf("during the grace period: %d %s", a.status, a.raw)
		}
	}
	// A retiring key can neither rotate again nor change settings.
	if a := e.call(t, old, "POST", "/v1/settings/secret-key/rotate", ""); a.status != 403 || a.code() != "FORBIDDEN" {
		t.Fatalf("second rotation with the old key: %d %s", a.status, a.raw)
	}
	if a := e.call(t, old, "PATCH", "/v1/settings", `{"ip_whitelist":["203.0.113.0/24"]}`); a.status != 403 {
		t.Fatalf("settings change with the old key: %d %s", a.status, a.raw)
	}

	e.clock.Advance(time.Hour - time.Second)
	if a := e.call(t, old, "GET", "/v1/balance", ""); a.status != 200 {
		t.Fatalf("1 s before the grace period ends: %d %s", a.status, a.raw)
	}
	e.clock.Advance(time.Second)
	if a := e.call(t, old, "GET", "/v1/balance", ""); a.status != 401 || a.code() != "UNAUTHORIZED" {
		t.Fatalf("after the grace period: %d %s", a.status, a.raw)
	}
	if a := e.call(t, fresh, "GET", "/v1/balance", ""); a.status != 200 {
		t.Fatalf("new key after the grace period: %d %s", a.status, a.raw)
	}

	// The operator sees the keys by id and hint only, and revokes at once.
	keys := e.operatorCall(t, "GET", "/operator/v1/merchants/m1/keys", "")
	if keys.status != 200 || strings.Contains(keys.raw, old) || strings.Contains(keys.raw, fresh) {
		t.Fatalf("list keys: %d %s", keys.status, keys.raw)
	}
	list, _ := keys.body["data"].([]any)
	if len(list) != 2 {
		t.Fatalf("want 2 keys: %s", keys.raw)
	}
	first, _ := list[0].(map[string]any)
	second, _ := list[1].(map[string]any)
	if first["status"] != "EXPIRED" || second["status"] != "ACTIVE" || second["hint"] != "sk_sandbox_..."+fresh[len(fresh)-4:] {
		t.Fatalf("key states: %s", keys.raw)
	}
	freshID, _ := second["id"].(string)
	if a := e.operatorCall(t, "POST", "/operator/v1/merchants/m1/keys/"+freshID+"/revoke", ""); a.status != 200 || a.body["status"] != "REVOKED" {
		t.Fatalf("revoke: %d %s", a.status, a.raw)
	}
	if a := e.call(t, fresh, "GET", "/v1/balance", ""); a.status != 401 {
		t.Fatalf("revoked key: %d %s", a.status, a.raw)
	}
	if a := e.operatorCall(t, "POST", "/operator/v1/merchants/m1/keys/"+freshID+"/revoke", ""); a.status != 200 {
		t.Fatalf("revoking twice: %d %s", a.status, a.raw)
	}
	fixture.Merchant(t, e.pool, "m2", 1, api.DefaultSettings)
	if a := e.operatorCall(t, "POST", "/operator/v1/merchants/m2/keys/"+freshID+"/revoke", ""); a.status != 404 {
		t.Fatalf("revoking another merchant's key: %d %s", a.status, a.raw)
	}

	// A merchant locked out gets a key from the operator.
	issued := e.operatorCall(t, "POST", "/operator/v1/merchants/m1/environments/sandbox/keys", "")
	k, _ := issued.body["secret_key"].(string)
	if issued.status != 201 || e.call(t, k, "GET", "/v1/balance", "").status != 200 {
		t.Fatalf("issue key: %d %s", issued.status, issued.raw)
	}

	// Every change is in the audit log, without a secret.
	audit := e.operatorCall(t, "GET", "/operator/v1/merchants/m1/settings-audit?environment=sandbox", "")
	if audit.status != 200 || strings.Contains(audit.raw, fresh) || strings.Contains(audit.raw, k) || strings.Contains(audit.raw, old) {
		t.Fatalf("audit: %d %s", audit.status, audit.raw)
	}
	entries, _ := audit.body["data"].([]any)
	var actors []string
	for _, x := range entries {
		m, _ := x.(map[string]any)
		actors = append(actors, fmt.Sprint(m["setting"], "/", m["actor"]))
	}
	oldID := first["id"].(string)
	want := []string{"secret_key/operator", "secret_key/operator", "secret_key/" + oldID}
	if strings.Join(actors, ",") != strings.Join(want, ",") {
		t.Fatalf("audit entries %v, want %v", actors, want)
	}
}

func TestIPWhitelist(t *testing.T) {
	e := newEnv(t)
	// Set from 127.0.0.1, which the list leaves out: allowed, with a warning.
	a := e.call(t, e.key, "PATCH", "/v1/settings", `{"ip_whitelist":["203.0.113.0/24","2001:db8::/32","198.51.100.7"]}`)
	if a.status != 200 || !strings.Contains(a.raw, "127.0.0.1") || a.body["warnings"] == nil {
		t.Fatalf("patch: %d %s", a.status, a.raw)
	}
	if got := fmt.Sprint(a.body["ip_whitelist"]); got != "[203.0.113.0/24 2001:db8::/32 198.51.100.7/32]" {
		t.Fatalf("normalized whitelist %s", got)
	}
	denied := counter(t, "disburse_api_ip_denied_total", map[string]string{"environment": "sandbox"})
	cases := []struct {
		name, peer, xff string
		status          int
	}{
		{"listed IPv4", "203.0.113.9:4242", "", 200},
		{"single listed address", "198.51.100.7:4242", "", 200},
		{"unlisted IPv4", "198.51.100.8:4242", "", 403},
		{"listed IPv6", "[2001:db8::5]:443", "", 200},
		{"unlisted IPv6", "[2001:db9::5]:443", "", 403},
		{"IPv4-mapped IPv6 peer", "[::ffff:203.0.113.9]:443", "", 200},
		{"spoofed X-Forwarded-For from an untrusted peer", "198.51.100.8:4242", "203.0.113.9", 403},
		{"trusted proxy forwards a listed client", "10.1.2.3:4242", "203.0.113.9", 200},
		{"trusted IPv6 proxy forwards a listed client", "[2001:db8:ffff::1]:4242", "2001:db8::77", 200},
		{"trusted proxy forwards an unlisted client", "10.1.2.3:4242", "198.51.100.8", 403},
		{"client-written entry left of the proxy's is ignored", "10.1.2.3:4242", "203.0.113.9, 198.51.100.8", 403},
		{"chain of trusted proxies", "10.1.2.3:4242", "203.0.113.9, 10.9.9.9", 200},
		{"proxy writes a port", "10.1.2.3:4242", "203.0.113.9:5555", 200},
		{"garbage from a trusted proxy", "10.1.2.3:4242", "unknown", 403},
		{"trusted proxy without X-Forwarded-For", "10.1.2.3:4242", "", 403},
	}
	wantDenied := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v1/balance", nil)
			req.RemoteAddr = c.peer
			req.SetBasicAuth(e.key, "")
			if c.xff != "" {
				req.Header.Set("X-Forwarded-For", c.xff)
			}
			rec := httptest.NewRecorder()
			e.s.Handler().ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, c.status)
			}
			if c.status == 403 && !strings.Contains(rec.Body.String(), `"code":"FORBIDDEN"`) {
				t.Fatalf("403 without the FORBIDDEN code: %s", rec.Body)
			}
		})
		if c.status == 403 {
			wantDenied++
		}
	}
	// Over a real socket from 127.0.0.1: refused too.
	if a := e.call(t, e.key, "GET", "/v1/balance", ""); a.status != 403 {
		t.Fatalf("loopback caller: %d %s", a.status, a.raw)
	}
	wantDenied++
	if got := counter(t, "disburse_api_ip_denied_total", map[string]string{"environment": "sandbox"}) - denied; got != float64(wantDenied) {
		t.Errorf("denied counter grew by %v, want %d", got, wantDenied)
	}
	// From a listed address the list can be emptied again, without a warning.
	req := httptest.NewRequest("PATCH", "/v1/settings", strings.NewReader(`{"ip_whitelist":[]}`))
	req.RemoteAddr = "203.0.113.9:1"
	req.SetBasicAuth(e.key, "")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "warnings") {
		t.Fatalf("clear whitelist: %d %s", rec.Code, rec.Body)
	}
	if a := e.call(t, e.key, "GET", "/v1/balance", ""); a.status != 200 {
		t.Fatalf("after clearing the whitelist: %d %s", a.status, a.raw)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM settings_audit WHERE setting = 'ip_whitelist'`); n != 2 {
		t.Fatalf("%d ip_whitelist audit entries, want 2", n)
	}
}

// TestRateLimitAcrossInstances: two API instances on one database, each
// with its own pool, share each merchant's buckets. A burst over the limit
// gets 429 with Retry-After; the other merchant's calls in the same moment
// pass; the create budget is separate from the read budget.
func TestRateLimitAcrossInstances(t *testing.T) {
	e := newEnv(t)
	k2 := fixture.Merchant(t, e.pool, "m2", 1_000_000_000, api.DefaultSettings)
	if a := e.operatorCall(t, "PUT", "/operator/v1/merchants/m1/environments/sandbox/rate-limits", `{"create_per_second":1,"read_per_second":5}`); a.status != 200 {
		t.Fatalf("set limits: %d %s", a.status, a.raw)
	}
	pool2, err := pgxpool.New(context.Background(), e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool2.Close)
	second := httptest.NewServer(e.newServer(pool2).Handler())
	t.Cleanup(second.Close)
	instances := []string{e.srv.URL, second.URL}
	limited := counter(t, "disburse_api_rate_limited_total", map[string]string{"environment": "sandbox", "budget": "read"})

	const n1, n2 = 40, 20
	type result struct {
		merchant string
		a        answer
	}
	results := make(chan result, n1+n2)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n1+n2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m, key := "m1", e.key
			if i >= n1 {
				m, key = "m2", k2
			}
			results <- result{m, e.callWith(t, key, "GET", instances[i%2]+"/v1/balance", "", nil)}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(results)
	ok1 := 0
	for r := range results {
		switch {
		case r.merchant == "m2" && r.a.status != 200:
			t.Errorf("the other merchant was limited: %d %s", r.a.status, r.a.raw)
		case r.merchant == "m1" && r.a.status == 200:
			ok1++
		case r.merchant == "m1":
			if r.a.status != 429 || r.a.code() != "RATE_LIMITED" {
				t.Errorf("over the limit: %d %s", r.a.status, r.a.raw)
			}
			if s, err := strconv.Atoi(r.a.header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("429 with Retry-After %q", r.a.header.Get("Retry-After"))
			}
		}
	}
	// The bucket holds 10 (twice 5/s) and refills 5/s while the burst runs;
	// the buckets are one row per merchant, so the margin across instances is 0.
	most := 10 + int(5*elapsed.Seconds())
	if ok1 < 10 || ok1 > most {
		t.Fatalf("m1 got %d calls through in %s, want 10 to %d", ok1, elapsed, most)
	}
	if got := counter(t, "disburse_api_rate_limited_total", map[string]string{"environment": "sandbox", "budget": "read"}) - limited; got != float64(n1-ok1) {
		t.Errorf("rate-limited counter grew by %v, want %d", got, n1-ok1)
	}
	// The create budget is its own: two creates pass (burst 2), the third is
	// limited unless a second has passed since the first (one refill).
	createStart := time.Now()
	for i, want := range []int{202, 202, 429} {
		if i == 2 && time.Since(createStart) >= time.Second {
			t.Skip("the machine is too slow to tell the third create from a refill")
		}
		a := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/disbursements",
			fmt.Sprintf(`{"reference_id":"rl-%d","bank_code":"bca","account_number":"1234567890","amount":150000}`, i),
			func(r *http.Request) { r.Header.Set("Idempotency-Key", fmt.Sprint("rl-", i)) })
		if a.status != want {
			t.Fatalf("create %d: %d %s, want %d", i, a.status, a.raw, want)
		}
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements`); n != 2 {
		t.Fatalf("%d payouts after a rate-limited create, want 2", n)
	}
}

// TestSettingsPatchRejectsBadInputAndChangesNothing: every hostile PATCH
// answers the documented error and writes nothing, settings nor audit.
func TestSettingsPatchRejectsBadInputAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf(`"10.0.%d.0/24"`, i)
	}
	cases := []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{"empty object", `{}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"ftp URL", `{"callback_url":"ftp://example.com/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"relative URL", `{"callback_url":"/callbacks"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"http URL", `{"callback_url":"http://example.com/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"loopback", `{"callback_url":"https://127.0.0.1/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"IPv6 loopback", `{"callback_url":"https://[::1]:8443/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"private", `{"callback_url":"https://10.0.0.5/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"metadata", `{"callback_url":"https://169.254.169.254/latest/meta-data"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"mapped loopback", `{"callback_url":"https://[::ffff:127.0.0.1]/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"decimal address", `{"callback_url":"https://2130706433/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"localhost", `{"callback_url":"https://localhost/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"credentials", `{"callback_url":"https://user:pw@example.com/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"fragment", `{"callback_url":"https://example.com/cb#x"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"bad port", `{"callback_url":"https://example.com:70000/cb"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"too long", `{"callback_url":"https://example.com/` + strings.Repeat("a", 2040) + `"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"control character", `{"callback_url":"https://example.com/\u0007"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"non-ASCII", `{"callback_url":"https://exämple.com/"}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"URL as number", `{"callback_url":5}`, 422, "VALIDATION_ERROR", "callback_url"},
		{"bad address", `{"ip_whitelist":["300.1.1.1"]}`, 422, "VALIDATION_ERROR", "ip_whitelist[0]"},
		{"bad prefix length", `{"ip_whitelist":["10.0.0.0/8","10.0.0.0/33"]}`, 422, "VALIDATION_ERROR", "ip_whitelist[1]"},
		{"zone", `{"ip_whitelist":["fe80::1%eth0"]}`, 422, "VALIDATION_ERROR", "ip_whitelist[0]"},
		{"null entry", `{"ip_whitelist":[null]}`, 422, "VALIDATION_ERROR", "ip_whitelist[0]"},
		{"control character entry", `{"ip_whitelist":["10.0.0.1\n"]}`, 422, "VALIDATION_ERROR", "ip_whitelist[0]"},
		{"too many entries", `{"ip_whitelist":[` + strings.Join(many, ",") + `]}`, 422, "VALIDATION_ERROR", "ip_whitelist"},
		{"whitelist as string", `{"ip_whitelist":"10.0.0.0/8"}`, 422, "VALIDATION_ERROR", "ip_whitelist"},
		{"one bad field spoils the other", `{"callback_url":"https://example.com/cb","ip_whitelist":["x"]}`, 422, "VALIDATION_ERROR", "ip_whitelist[0]"},
		{"unknown field", `{"callback_url":"https://example.com/cb","rate_limits":{}}`, 422, "VALIDATION_ERROR", "rate_limits"},
		{"batch size 0", `{"callback_batch_size":0}`, 422, "VALIDATION_ERROR", "callback_batch_size"},
		{"batch size 101", `{"callback_batch_size":101}`, 422, "VALIDATION_ERROR", "callback_batch_size"},
		{"batch size -1", `{"callback_batch_size":-1}`, 422, "VALIDATION_ERROR", "callback_batch_size"},
		{"batch size as string", `{"callback_batch_size":"100"}`, 422, "VALIDATION_ERROR", "callback_batch_size"},
		{"batch size fractional", `{"callback_batch_size":2.5}`, 422, "VALIDATION_ERROR", "callback_batch_size"},
		{"batch size too big for an integer", `{"callback_batch_size":1e30}`, 422, "VALIDATION_ERROR", "callback_batch_size"},
		{"concurrency 0", `{"callback_concurrency":0}`, 422, "VALIDATION_ERROR", "callback_concurrency"},
		{"concurrency 65", `{"callback_concurrency":65}`, 422, "VALIDATION_ERROR", "callback_concurrency"},
		{"concurrency -1", `{"callback_concurrency":-1}`, 422, "VALIDATION_ERROR", "callback_concurrency"},
		{"concurrency as string", `{"callback_concurrency":"8"}`, 422, "VALIDATION_ERROR", "callback_concurrency"},
		{"good batch size, bad concurrency", `{"callback_batch_size":50,"callback_concurrency":100}`, 422, "VALIDATION_ERROR", "callback_concurrency"},
		{"duplicate key", `{"callback_url":"https://a.example.com/","callback_url":"https://b.example.com/"}`, 400, "INVALID_JSON", ""},
		{"trailing data", `{"callback_url":"https://example.com/cb"} {}`, 400, "INVALID_JSON", ""},
		{"not UTF-8", "{\"callback_url\":\"https://example.com/\xff\"}", 400, "INVALID_JSON", ""},
		{"not JSON", `callback_url=x`, 400, "INVALID_JSON", ""},
		{"over the body limit", `{"callback_url":"` + strings.Repeat("a", 17<<10) + `"}`, 413, "PAYLOAD_TOO_LARGE", ""},
	}
	before := accessState(t, e.pool)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.call(t, e.key, "PATCH", "/v1/settings", c.body)
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("got %d %s, want %d %s: %s", a.status, a.code(), c.status, c.code, a.raw)
			}
			if c.field != "" && !strings.Contains(a.raw, `"field":"`+c.field+`"`) {
				t.Errorf("error does not name field %s: %s", c.field, a.raw)
			}
		})
	}
	if after := accessState(t, e.pool); after != before {
		t.Fatalf("rejected patches changed the settings:\n%s\n%s", before, after)
	}
	// A good change is applied and audited with the key id, old and new value.
	a := e.call(t, e.key, "PATCH", "/v1/settings", `{"callback_url":"https://merchant.example.com/callbacks"}`)
	if a.status != 200 || a.body["callback_url"] != "https://merchant.example.com/callbacks" || a.body["warnings"] != nil {
		t.Fatalf("good patch: %d %s", a.status, a.raw)
	}
	if !strings.HasPrefix(fmt.Sprint(a.body["callback_secret"]), "whsec_") {
		t.Fatalf("no callback secret: %s", a.raw)
	}
	var actor, oldV, newV string
	if err := e.pool.QueryRow(context.Background(), `SELECT actor, old_value::text, new_value::text FROM settings_audit WHERE setting = 'callback_url'`).
		Scan(&actor, &oldV, &newV); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(actor, "key_") || oldV != `""` || newV != `"https://merchant.example.com/callbacks"` {
		t.Fatalf("audit row %s %s %s", actor, oldV, newV)
	}
	// Sending the same value again changes nothing and audits nothing.
	e.call(t, e.key, "PATCH", "/v1/settings", `{"callback_url":"https://merchant.example.com/callbacks"}`)
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM settings_audit WHERE setting = 'callback_url'`); n != 1 {
		t.Fatalf("%d callback_url audit rows, want 1", n)
	}
}

// TestSettingsCallbackDelivery: callback_batch_size and callback_concurrency
// start at 1 and 4, change alone or together, show in GET and are audited.
func TestSettingsCallbackDelivery(t *testing.T) {
	e := newEnv(t)
	a := e.call(t, e.key, "GET", "/v1/settings", "")
	if a.status != 200 || a.body["callback_batch_size"] != float64(1) || a.body["callback_concurrency"] != float64(4) {
		t.Fatalf("defaults: %d %s", a.status, a.raw)
	}
	a = e.call(t, e.key, "PATCH", "/v1/settings", `{"callback_batch_size":100}`)
	if a.status != 200 || a.body["callback_batch_size"] != float64(100) || a.body["callback_concurrency"] != float64(4) {
		t.Fatalf("batch size: %d %s", a.status, a.raw)
	}
	a = e.call(t, e.key, "PATCH", "/v1/settings", `{"callback_concurrency":64,"callback_batch_size":1}`)
	if a.status != 200 || a.body["callback_batch_size"] != float64(1) || a.body["callback_concurrency"] != float64(64) {
		t.Fatalf("both: %d %s", a.status, a.raw)
	}
	a = e.call(t, e.key, "GET", "/v1/settings", "")
	if a.body["callback_batch_size"] != float64(1) || a.body["callback_concurrency"] != float64(64) {
		t.Fatalf("GET after PATCH: %s", a.raw)
	}
	got := map[string]int{}
	rows, err := e.pool.Query(context.Background(), `SELECT setting, count(*) FROM settings_audit GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		got[s] = n
	}
	if got["callback_batch_size"] != 2 || got["callback_concurrency"] != 1 {
		t.Fatalf("audit rows %v, want 2 callback_batch_size and 1 callback_concurrency", got)
	}
}

// TestInsecureSandboxCallbacks: the switch lets sandbox use http and
// loopback; production stays strict whatever the switch.
func TestInsecureSandboxCallbacks(t *testing.T) {
	e := newEnv(t)
	s := e.newServer(e.pool)
	s.CallbackPolicy.AllowInsecureSandbox = true
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	live := activateProduction(t, e, "m1")
	for _, c := range []struct {
		key    string
		status int
	}{{e.key, 200}, {live, 422}} {
		a := e.callWith(t, c.key, "PATCH", srv.URL+"/v1/settings", `{"callback_url":"http://127.0.0.1:9000/cb"}`, nil)
		if a.status != c.status {
			t.Fatalf("%s: %d %s, want %d", c.key[:8], a.status, a.raw, c.status)
		}
	}
}

// activateProduction turns on the merchant's production with a deposit and
// returns its key.
func activateProduction(t *testing.T, e *env, merchantID string) string {
	t.Helper()
	a := e.operatorCall(t, "POST", "/operator/v1/merchants/"+merchantID+"/production/activate", "")
	key, _ := a.body["secret_key"].(string)
	if a.status != 201 || !strings.HasPrefix(key, "sk_live_") {
		t.Fatalf("activate production: %d %s", a.status, a.raw)
	}
	if a := e.callWith(t, "", "POST", e.op.URL+"/operator/v1/merchants/"+merchantID+"/topups", `{"environment":"production","amount":500000000}`,
		func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+operatorToken)
			r.Header.Set("Idempotency-Key", "topup-production-"+merchantID)
		}); a.status != 200 {
		t.Fatalf("top up: %d %s", a.status, a.raw)
	}
	return key
}

// accessState fingerprints every table a settings change may write.
func accessState(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT
		(SELECT coalesce(md5(string_agg(e::text, ',' ORDER BY merchant_id, environment)), '') FROM merchant_environments e) || '/' ||
		(SELECT coalesce(md5(string_agg(k::text, ',' ORDER BY id)), '') FROM api_keys k) || '/' ||
		(SELECT count(*) FROM settings_audit)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLogsCarryNoSecrets: keys, callback secrets and account numbers never
// reach the log, whatever the call.
func TestLogsCarryNoSecrets(t *testing.T) {
	e := newEnv(t)
	const account = "8877665544"
	body := `{"reference_id":"log-1","bank_code":"bca","account_number":"` + account + `","amount":150000}`
	e.callWith(t, e.key, "POST", e.srv.URL+"/v1/disbursements", body, func(r *http.Request) { r.Header.Set("Idempotency-Key", "log-1") })
	settings := e.call(t, e.key, "GET", "/v1/settings", "")
	secret, _ := settings.body["callback_secret"].(string)
	rot := e.call(t, e.key, "POST", "/v1/settings/secret-key/rotate", "")
	fresh, _ := rot.body["secret_key"].(string)
	e.call(t, "sk_sandbox_"+strings.Repeat("ab", 32), "GET", "/v1/balance", "")
	e.call(t, fresh, "PATCH", "/v1/settings", `{"ip_whitelist":["203.0.113.0/24"]}`)
	e.call(t, e.key, "GET", "/v1/balance", "") // refused by the whitelist: logged
	logs := e.logs.String()
	if !strings.Contains(logs, "secret key rotated") || !strings.Contains(logs, "IP whitelist") {
		t.Fatalf("the calls were not logged at all:\n%s", logs)
	}
	for name, secretValue := range map[string]string{"old key": e.key, "new key": fresh, "callback secret": secret, "account number": account,
		"unknown key": strings.Repeat("ab", 32)} {
		if secretValue == "" || strings.Contains(logs, secretValue) {
			t.Errorf("%s %q in the log:\n%s", name, secretValue, logs)
		}
	}
}
