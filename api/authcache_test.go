package api_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/internal/fixture"
)

// A key's lookup is reused for AuthCacheTTL on one instance: a revocation
// written by another instance (here straight into Postgres) reaches this
// one when the entry runs out, and a change made through this instance
// (its whitelist) applies to the very next call.
func TestAuthCache(t *testing.T) {
	e := newEnv(t)
	s := e.newServer(e.pool)
	s.AuthCacheTTL = 2 * time.Second
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	get := func(key string) int {
		return e.callWith(t, key, "GET", srv.URL+"/v1/balance", "", nil).status
	}

	if code := get(e.key); code != 200 {
		t.Fatalf("balance with the key: %d", code)
	}
	if _, err := e.pool.Exec(context.Background(), `UPDATE api_keys SET revoked_at = now() WHERE merchant_id = 'm1'`); err != nil {
		t.Fatal(err)
	}
	if code := get(e.key); code != 200 {
		t.Fatalf("within the cache's time a key revoked elsewhere answered %d; the test assumes it is still cached", code)
	}
	e.clock.Advance(api.DefaultAuthCacheTTL + 2*time.Second)
	if code := get(e.key); code != 401 {
		t.Fatalf("after the cache's time a key revoked elsewhere answered %d, want 401", code)
	}

	key2 := fixture.Merchant(t, e.pool, "m2", 1_000_000, api.DefaultSettings)
	if code := get(key2); code != 200 {
		t.Fatalf("balance with the second key: %d", code)
	}
	if a := e.callWith(t, key2, "PATCH", srv.URL+"/v1/settings", `{"ip_whitelist":["203.0.113.0/24"]}`, nil); a.status != 200 {
		t.Fatalf("whitelist change: %d %s", a.status, a.raw)
	}
	if code := get(key2); code != 403 {
		t.Fatalf("the call after a whitelist change through this instance answered %d, want 403 at once", code)
	}
}
