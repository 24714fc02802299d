package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// issueKey makes a restricted key with the env's full key.
func (e *env) issueKey(t *testing.T, label string, scopes ...string) (string, string) {
	t.Helper()
	a := e.call(t, e.key, "POST", "/v1/keys", `{"label":"`+label+`","scopes":["`+strings.Join(scopes, `","`)+`"]}`)
	if a.status != 201 {
		t.Fatalf("issue key %s: %d %s", label, a.status, a.raw)
	}
	return a.body["secret_key"].(string), a.body["id"].(string)
}

func TestScopedKeys(t *testing.T) {
	e := newEnv(t)
	reader, readerID := e.issueKey(t, "reporting job", "payouts:read")
	maker, _ := e.issueKey(t, "payroll", "payouts:create", "payouts:read")

	// The reader reads but may not pay, manage keys or rotate; each refusal
	// names the scope and changes nothing.
	if a := e.call(t, reader, "GET", "/v1/disbursements", ""); a.status != 200 {
		t.Fatalf("reader lists payouts: %d %s", a.status, a.raw)
	}
	refusals := []struct{ method, path, body, scope string }{
		{"POST", "/v1/disbursements", validBody, "payouts:create"},
		{"GET", "/v1/settings", "", "settings"},
		{"GET", "/v1/reports/summary?from=2026-01-01&to=2026-01-02", "", "reports"},
		{"GET", "/v1/keys", "", "full"},
		{"POST", "/v1/keys", `{"label":"escalate","scopes":["settings"]}`, "full"},
		{"POST", "/v1/settings/secret-key/rotate", "", "full"},
	}
	for _, c := range refusals {
		a := e.callWith(t, reader, c.method, e.srv.URL+c.path, c.body, func(r *http.Request) { r.Header.Set("Idempotency-Key", "scoped-1") })
		if a.status != 403 || a.code() != "INSUFFICIENT_SCOPE" {
			t.Fatalf("reader %s %s: %d %s", c.method, c.path, a.status, a.raw)
		}
		if got := a.body["error"].(map[string]any)["required_scope"]; got != c.scope {
			t.Errorf("%s %s: required_scope %v, want %s", c.method, c.path, got, c.scope)
		}
	}
	var n int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM disbursements`).Scan(&n)
	if n != 0 {
		t.Fatalf("a refused create stored %d payouts", n)
	}

	// The maker pays.
	if a := e.callWith(t, maker, "POST", e.srv.URL+"/v1/disbursements", validBody, func(r *http.Request) { r.Header.Set("Idempotency-Key", "maker-1") }); a.status != 202 {
		t.Fatalf("maker creates: %d %s", a.status, a.raw)
	}

	// The list shows labels, scopes and last use, never a key.
	list := e.call(t, e.key, "GET", "/v1/keys", "")
	if list.status != 200 || strings.Contains(list.raw, reader) || strings.Contains(list.raw, e.key) {
		t.Fatalf("list: %d %s", list.status, list.raw)
	}
	keys := list.body["data"].([]any)
	if len(keys) != 3 {
		t.Fatalf("want the full key and 2 restricted ones: %s", list.raw)
	}
	var fullID string
	for _, k := range keys {
		k := k.(map[string]any)
		if k["full"] == true {
			fullID = k["id"].(string)
			continue
		}
		if k["last_used_at"] == nil {
			t.Errorf("key %v used but no last_used_at", k["label"])
		}
		if k["id"] == readerID && (k["label"] != "reporting job" || len(k["scopes"].([]any)) != 1) {
			t.Errorf("reader key listed as %v", k)
		}
	}

	// Bad requests are refused with the field named.
	for _, body := range []string{`{"label":"","scopes":["reports"]}`, `{"label":"x","scopes":[]}`, `{"label":"x","scopes":["admin"]}`, `{"label":"x"}`} {
		if a := e.call(t, e.key, "POST", "/v1/keys", body); a.status != 422 || a.code() != "VALIDATION_ERROR" {
			t.Errorf("%s: %d %s", body, a.status, a.raw)
		}
	}

	// Rotating the full key leaves restricted keys working.
	e.clock.Advance(2 * time.Minute)
	if a := e.call(t, e.key, "POST", "/v1/settings/secret-key/rotate", ""); a.status != 201 {
		t.Fatalf("rotate: %d %s", a.status, a.raw)
	} else {
		e.key = a.body["secret_key"].(string)
	}
	if a := e.call(t, reader, "GET", "/v1/balance", ""); a.status != 200 {
		t.Fatalf("reader after rotation: %d %s", a.status, a.raw)
	}

	// The full key is not revoked by the merchant; a restricted one is, at once.
	if a := e.call(t, e.key, "POST", "/v1/keys/"+fullID+"/revoke", ""); a.status != 409 {
		t.Fatalf("revoke the full key: %d %s", a.status, a.raw)
	}
	if a := e.call(t, e.key, "POST", "/v1/keys/key_nope/revoke", ""); a.status != 404 {
		t.Fatalf("revoke an unknown key: %d %s", a.status, a.raw)
	}
	if a := e.call(t, e.key, "POST", "/v1/keys/"+readerID+"/revoke", ""); a.status != 200 || a.body["status"] != "REVOKED" {
		t.Fatalf("revoke: %d %s", a.status, a.raw)
	}
	if a := e.call(t, reader, "GET", "/v1/balance", ""); a.status != 401 {
		t.Fatalf("revoked key still works: %d %s", a.status, a.raw)
	}
	var audits int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM settings_audit WHERE setting = 'secret_key'`).Scan(&audits)
	if audits < 4 { // two issues, a rotation, a revoke
		t.Errorf("%d secret_key audit entries, want at least 4", audits)
	}
}
