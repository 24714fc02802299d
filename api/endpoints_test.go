package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/api"
)

// endpoint is how to call one route well: its path with the parameters
// filled, a valid JSON body ("" when it takes none), its headers, and
// requests that only it can get wrong (control characters in its text
// fields, numbers over int64).
type endpoint struct {
	path    string
	body    string
	headers map[string]string
	hostile []hostile
	// crossStatus is what a key of the other environment gets (separation
	// test): 2xx, or 404 for a resource of the other environment.
	crossStatus int
	// largeBodies: the route takes bodies far over 16 KiB (batches; their
	// size limits are tested in batch_test.go).
	largeBodies bool
	// public: the route needs no key (the OpenAPI document).
	public bool
}

type hostile struct {
	name, path, body string
	status           int
	code             string
}

// endpoints names a case for every route of both APIs; a route without one
// fails the tests, so new routes join them. id is a disbursement id.
func endpoints(id string) map[string]endpoint {
	return map[string]endpoint{
		"POST /v1/disbursements": {
			path: "/v1/disbursements", crossStatus: 202,
			body:    `{"reference_id":"ep-1","bank_code":"bca","account_number":"1234567890","amount":150000}`,
			headers: map[string]string{"Idempotency-Key": "ep-1"},
			hostile: []hostile{
				{"control character", "", `{"reference_id":"ep-1","bank_code":"bca","account_number":"1234567890","amount":150000,"description":"a\u001bb"}`, 422, "VALIDATION_ERROR"},
				{"amount over int64", "", `{"reference_id":"ep-1","bank_code":"bca","account_number":"1234567890","amount":9223372036854775808}`, 422, "VALIDATION_ERROR"},
			},
		},
		"GET /v1/disbursements": {path: "/v1/disbursements?status=PENDING&status=FAILED&bank_code=bca", crossStatus: 200,
			hostile: []hostile{
				{"unknown status", "/v1/disbursements?status=PENDING&status=bogus", "", 400, "VALIDATION_ERROR"},
				{"limit over 200", "/v1/disbursements?limit=201", "", 400, "VALIDATION_ERROR"},
				{"not a time", "/v1/disbursements?created_from=yesterday", "", 400, "VALIDATION_ERROR"},
				{"empty range", "/v1/disbursements?created_from=2026-11-02T00:00:00Z&created_to=2026-11-01T00:00:00Z", "", 400, "VALIDATION_ERROR"},
				{"unknown bank", "/v1/disbursements?bank_code=zz", "", 400, "VALIDATION_ERROR"},
				{"cursor with NUL and invalid UTF-8", "/v1/disbursements?cursor=%00%ff%fe", "", 400, "VALIDATION_ERROR"},
				{"control character in reference", "/v1/disbursements?reference_id=a%07", "", 400, "VALIDATION_ERROR"},
			}},
		"GET /v1/disbursements/{id}": {path: "/v1/disbursements/" + id, crossStatus: 404,
			hostile: []hostile{{"overlong id", "/v1/disbursements/" + strings.Repeat("d", 300), "", 404, "NOT_FOUND"},
				{"id with NUL", "/v1/disbursements/dsb_%00%ff", "", 404, "NOT_FOUND"}}},
		"GET /v1/balance": {path: "/v1/balance", crossStatus: 200,
			hostile: []hostile{{"unsupported currency", "/v1/balance?currency=USD", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/banks": {path: "/v1/banks", crossStatus: 200},
		"GET /v1/balance/transactions": {path: "/v1/balance/transactions", crossStatus: 200,
			hostile: []hostile{{"bad cursor", "/v1/balance/transactions?cursor=bt_%ff%00", "", 400, "VALIDATION_ERROR"},
				{"limit over the page", "/v1/balance/transactions?limit=1001", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/balance/transactions.csv": {path: "/v1/balance/transactions.csv", crossStatus: 200,
			hostile: []hostile{{"not a time", "/v1/balance/transactions.csv?from=monday", "", 400, "VALIDATION_ERROR"}}},
		"POST /v1/account-inquiry": {path: "/v1/account-inquiry", crossStatus: 200,
			body:    `{"bank_code":"bca","account_number":"1234567890"}`,
			hostile: []hostile{{"letters in the account", "", `{"bank_code":"bca","account_number":"12ab"}`, 422, "VALIDATION_ERROR"}}},
		"POST /v1/batches": {path: "/v1/batches", crossStatus: 202, largeBodies: true,
			body:    `{"reference_id":"b-1","items":[{"reference_id":"ep-b1","bank_code":"bca","account_number":"1234567890","amount":150000}]}`,
			headers: map[string]string{"Idempotency-Key": "ep-b1"},
			hostile: []hostile{
				{"amount over int64", "", `{"reference_id":"b-1","items":[{"reference_id":"ep-b1","bank_code":"bca","account_number":"1234567890","amount":9223372036854775808}]}`, 422, "VALIDATION_ERROR"},
				{"control character", "", `{"reference_id":"b-1","items":[{"reference_id":"ep-b1","bank_code":"bca","account_number":"1234567890","amount":150000,"description":"a\u0007"}]}`, 422, "VALIDATION_ERROR"},
			}},
		"GET /v1/batches/{id}": {path: "/v1/batches/" + id, crossStatus: 404},
		"POST /v1/batches/quote": {path: "/v1/batches/quote", crossStatus: 200, largeBodies: true,
			body: `{"reference_id":"q-1","items":[{"reference_id":"ep-q1","bank_code":"bca","account_number":"1234567890","amount":150000}]}`,
			hostile: []hostile{
				{"unknown field", "", `{"reference_id":"q-1","admin":true,"items":[{"reference_id":"ep-q1","bank_code":"bca","account_number":"1234567890","amount":150000}]}`, 422, "VALIDATION_ERROR"},
				{"control character in the reference", "", `{"reference_id":"q\u0007","items":[{"reference_id":"ep-q1","bank_code":"bca","account_number":"1234567890","amount":150000}]}`, 422, "VALIDATION_ERROR"},
				{"a quote_id", "", `{"reference_id":"q-1","quote_id":"quo_1","items":[{"reference_id":"ep-q1","bank_code":"bca","account_number":"1234567890","amount":150000}]}`, 422, "VALIDATION_ERROR"},
			}},
		"POST /v1/disbursements/{id}/cancel": {path: "/v1/disbursements/" + id + "/cancel", crossStatus: 404,
			hostile: []hostile{{"overlong id", "/v1/disbursements/" + strings.Repeat("d", 300) + "/cancel", "", 404, "NOT_FOUND"},
				{"id with NUL", "/v1/disbursements/dsb_%00%ff/cancel", "", 404, "NOT_FOUND"}}},
		"POST /v1/batches/{id}/cancel": {path: "/v1/batches/" + id + "/cancel", crossStatus: 404,
			hostile: []hostile{{"id not UTF-8", "/v1/batches/b%ff/cancel", "", 404, "NOT_FOUND"},
				{"overlong id", "/v1/batches/" + strings.Repeat("b", 300) + "/cancel", "", 404, "NOT_FOUND"}}},
		"GET /v1/batches": {path: "/v1/batches?status=ACCEPTED&status=COMPLETED", crossStatus: 200,
			hostile: []hostile{{"unknown status", "/v1/batches?status=DONE", "", 400, "VALIDATION_ERROR"},
				{"bad cursor", "/v1/batches?cursor=%00%ff", "", 400, "VALIDATION_ERROR"},
				{"limit over 200", "/v1/batches?limit=201", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/batches/{id}/items": {path: "/v1/batches/" + id + "/items", crossStatus: 404,
			hostile: []hostile{{"id not UTF-8", "/v1/batches/b%ff/items", "", 404, "NOT_FOUND"}}},
		"GET /v1/settings": {path: "/v1/settings", crossStatus: 200},
		"GET /v1/keys":     {path: "/v1/keys", crossStatus: 200},
		"GET /v1/controls": {path: "/v1/controls", crossStatus: 200},
		"POST /v1/account-inquiries": {path: "/v1/account-inquiries", crossStatus: 202, largeBodies: true, body: `{"items":[{"bank_code":"bca","account_number":"1234567890"}]}`,
			hostile: []hostile{{"letters in an account", "", `{"items":[{"bank_code":"bca","account_number":"12ab"}]}`, 422, "VALIDATION_ERROR"},
				{"control character", "", `{"items":[{"bank_code":"bca\u0007","account_number":"1234567890"}]}`, 422, "VALIDATION_ERROR"}}},
		"GET /v1/account-inquiries/{id}": {path: "/v1/account-inquiries/" + id, crossStatus: 404,
			hostile: []hostile{{"overlong id", "/v1/account-inquiries/" + strings.Repeat("i", 300), "", 404, "NOT_FOUND"}}},
		"POST /v1/disbursements/{id}/approve": {path: "/v1/disbursements/" + id + "/approve", crossStatus: 404, body: `{"note":"ep"}`,
			hostile: []hostile{{"control character in the note", "", `{"note":"a\u0007"}`, 422, "VALIDATION_ERROR"}}},
		"POST /v1/disbursements/{id}/reject": {path: "/v1/disbursements/" + id + "/reject", crossStatus: 404, body: `{"note":"ep"}`,
			hostile: []hostile{{"overlong id", "/v1/disbursements/" + strings.Repeat("d", 300) + "/reject", `{"note":"x"}`, 404, "NOT_FOUND"}}},
		"POST /v1/batches/{id}/approve": {path: "/v1/batches/" + id + "/approve", crossStatus: 404, body: `{"note":"ep"}`,
			hostile: []hostile{{"note over 500 characters", "", `{"note":"` + strings.Repeat("n", 501) + `"}`, 422, "VALIDATION_ERROR"}}},
		"POST /v1/batches/{id}/reject": {path: "/v1/batches/" + id + "/reject", crossStatus: 404, body: `{"note":"ep"}`,
			hostile: []hostile{{"id not UTF-8", "/v1/batches/b%ff/reject", `{"note":"x"}`, 404, "NOT_FOUND"}}},
		"GET /v1/approvals": {path: "/v1/approvals?status=PENDING", crossStatus: 200,
			hostile: []hostile{{"unknown status", "/v1/approvals?status=MAYBE", "", 400, "VALIDATION_ERROR"},
				{"limit over the page", "/v1/approvals?limit=5000", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/approvals/policy": {path: "/v1/approvals/policy", crossStatus: 200},
		"PUT /v1/approvals/policy": {path: "/v1/approvals/policy", crossStatus: 200, body: `{"payout_amount":50000000,"expires_after_seconds":3600}`,
			hostile: []hostile{{"expiry too short", "", `{"expires_after_seconds":5}`, 422, "VALIDATION_ERROR"},
				{"amount over int64", "", `{"batch_amount":9223372036854775808}`, 422, "VALIDATION_ERROR"}}},
		"PUT /v1/controls/velocity": {path: "/v1/controls/velocity", crossStatus: 200, body: `{"max_count_per_hour":1000}`,
			hostile: []hostile{{"negative limit", "", `{"max_amount_per_day":-1}`, 422, "VALIDATION_ERROR"},
				{"limit over int64", "", `{"max_amount_per_day":9223372036854775808}`, 422, "VALIDATION_ERROR"}}},
		"POST /v1/controls/pause": {path: "/v1/controls/pause", crossStatus: 200, body: `{"reason":"ep"}`,
			hostile: []hostile{{"control character", "", `{"reason":"a\u0007"}`, 422, "VALIDATION_ERROR"}}},
		"POST /v1/controls/resume": {path: "/v1/controls/resume", crossStatus: 200},
		"POST /v1/keys": {path: "/v1/keys", crossStatus: 201, body: `{"label":"ep","scopes":["reports"]}`,
			hostile: []hostile{{"control character", "", `{"label":"a\u0007","scopes":["reports"]}`, 422, "VALIDATION_ERROR"},
				{"unknown scope", "", `{"label":"a","scopes":["root"]}`, 422, "VALIDATION_ERROR"}}},
		"POST /v1/keys/{id}/revoke": {path: "/v1/keys/" + id + "/revoke", crossStatus: 404,
			hostile: []hostile{{"overlong id", "/v1/keys/" + strings.Repeat("k", 300) + "/revoke", "", 404, "NOT_FOUND"}}},
		"PATCH /v1/settings": {path: "/v1/settings", crossStatus: 200,
			body: `{"callback_url":"https://cross.example.com/cb"}`,
			hostile: []hostile{
				{"control character", "", `{"callback_url":"https://example.com/a\u0000"}`, 422, "VALIDATION_ERROR"},
				{"number for a list", "", `{"ip_whitelist":99999999999999999999}`, 422, "VALIDATION_ERROR"},
			}},
		"POST /v1/settings/secret-key/rotate":      {path: "/v1/settings/secret-key/rotate", crossStatus: 201},
		"POST /v1/settings/callback-secret/rotate": {path: "/v1/settings/callback-secret/rotate", crossStatus: 200},
		"GET /v1/events": {path: "/v1/events", crossStatus: 200,
			hostile: []hostile{{"limit out of range", "/v1/events?limit=0", "", 400, "VALIDATION_ERROR"},
				{"bad cursor", "/v1/events?after=%00", "", 400, "VALIDATION_ERROR"},
				{"cursor not UTF-8", "/v1/events?after=evt_%ff", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/callbacks": {path: "/v1/callbacks", crossStatus: 200,
			hostile: []hostile{{"unknown status", "/v1/callbacks?status=bogus", "", 400, "VALIDATION_ERROR"},
				{"cursor with invalid UTF-8 and NUL", "/v1/callbacks?status=pending&cursor=%ff%fe%00", "", 400, "VALIDATION_ERROR"},
				{"cursor not handed out", "/v1/callbacks?status=pending&cursor=cb_nope", "", 400, "VALIDATION_ERROR"},
				{"bad percent-encoding", "/v1/callbacks?status=%zz", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/reports/summary": {path: "/v1/reports/summary?from=2026-11-01&to=2026-11-30&group_by=bank", crossStatus: 200,
			hostile: []hostile{{"unknown group_by", "/v1/reports/summary?from=2026-11-01&to=2026-11-30&group_by=hour", "", 400, "VALIDATION_ERROR"},
				{"from after to", "/v1/reports/summary?from=2026-11-30&to=2026-11-01&group_by=day", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/reports/disbursements.csv": {path: "/v1/reports/disbursements.csv?from=2026-11-01&to=2026-11-30", crossStatus: 200,
			hostile: []hostile{{"range over the maximum", "/v1/reports/disbursements.csv?from=2020-01-01&to=2026-11-30", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/openapi.yaml": {path: "/v1/openapi.yaml", crossStatus: 200, public: true,
			hostile: []hostile{{"query not UTF-8", "/v1/openapi.yaml?x=%ff", "", 400, "VALIDATION_ERROR"}}},
		"GET /v1/callbacks/{id}": {path: "/v1/callbacks/" + id, crossStatus: 404,
			hostile: []hostile{{"id not UTF-8", "/v1/callbacks/cb_%ff%00", "", 404, "NOT_FOUND"}}},
		"POST /v1/callbacks/{id}/redeliver": {path: "/v1/callbacks/" + id + "/redeliver", crossStatus: 404},

		"POST /operator/v1/merchants": {path: "/operator/v1/merchants", body: `{"id":"m9","name":"Nine"}`,
			hostile: []hostile{{"control character", "", `{"id":"m9","name":"Ni\u0007ne"}`, 422, "VALIDATION_ERROR"}}},
		"POST /operator/v1/merchants/{id}/sandbox/activate":    {path: "/operator/v1/merchants/m1/sandbox/activate"},
		"POST /operator/v1/merchants/{id}/production/activate": {path: "/operator/v1/merchants/m1/production/activate"},
		"POST /operator/v1/merchants/{id}/topups": {path: "/operator/v1/merchants/m1/topups", body: `{"environment":"sandbox","amount":100}`,
			headers: map[string]string{"Idempotency-Key": "ep-topup"},
			hostile: []hostile{
				{"amount over int64", "", `{"environment":"sandbox","amount":92233720368547758070}`, 422, "VALIDATION_ERROR"},
				{"control character", "", `{"environment":"sandbox","amount":100,"memo":"a\u0085b"}`, 422, "VALIDATION_ERROR"},
			}},
		"PUT /operator/v1/merchants/{id}/environments/{env}/settings": {path: "/operator/v1/merchants/m1/environments/sandbox/settings", body: `{"fee_flat":2500}`,
			hostile: []hostile{{"fee over int64", "", `{"fee_flat":9223372036854775808}`, 422, "VALIDATION_ERROR"}}},
		"POST /operator/v1/merchants/{id}/suspend":                 {path: "/operator/v1/merchants/m1/suspend"},
		"POST /operator/v1/merchants/{id}/resume":                  {path: "/operator/v1/merchants/m1/resume"},
		"GET /operator/v1/merchants/{id}/keys":                     {path: "/operator/v1/merchants/m1/keys"},
		"POST /operator/v1/merchants/{id}/environments/{env}/keys": {path: "/operator/v1/merchants/m1/environments/sandbox/keys"},
		"POST /operator/v1/merchants/{id}/keys/{key_id}/revoke":    {path: "/operator/v1/merchants/m1/keys/key_0/revoke"},
		"PUT /operator/v1/merchants/{id}/environments/{env}/rate-limits": {path: "/operator/v1/merchants/m1/environments/sandbox/rate-limits", body: `{"read_per_second":10}`,
			hostile: []hostile{{"rate over int64", "", `{"read_per_second":9223372036854775808}`, 422, "VALIDATION_ERROR"}}},
		"PUT /operator/v1/merchants/{id}/environments/{env}/velocity-ceiling": {path: "/operator/v1/merchants/m1/environments/sandbox/velocity-ceiling", body: `{"max_amount_per_day":100000000}`,
			hostile: []hostile{{"ceiling over int64", "", `{"max_amount_per_day":9223372036854775808}`, 422, "VALIDATION_ERROR"},
				{"inactive environment", "/operator/v1/merchants/m1/environments/production/velocity-ceiling", `{"max_amount_per_day":1}`, 404, "NOT_FOUND"}}},
		"POST /operator/v1/merchants/{id}/environments/{env}/pause": {path: "/operator/v1/merchants/m1/environments/sandbox/pause", body: `{"reason":"ep"}`,
			hostile: []hostile{{"control character", "", `{"reason":"a\u0000"}`, 422, "VALIDATION_ERROR"}}},
		"POST /operator/v1/merchants/{id}/environments/{env}/resume": {path: "/operator/v1/merchants/m1/environments/sandbox/resume",
			hostile: []hostile{{"unknown merchant", "/operator/v1/merchants/nobody/environments/sandbox/resume", "", 404, "NOT_FOUND"}}},
		"PUT /operator/v1/merchants/{id}/environments/{env}/billing": {path: "/operator/v1/merchants/m1/environments/sandbox/billing",
			body:    `{"billing":"invoice","credit_limit":1000000}`,
			hostile: []hostile{{"credit over int64", "", `{"billing":"invoice","credit_limit":9223372036854775808}`, 422, "VALIDATION_ERROR"}}},
		"GET /operator/v1/merchants/{id}/environments/{env}/invoices": {path: "/operator/v1/merchants/m1/environments/sandbox/invoices"},
		"POST /operator/v1/merchants/{id}/environments/{env}/invoices/close": {path: "/operator/v1/merchants/m1/environments/sandbox/invoices/close",
			headers: map[string]string{"Idempotency-Key": "ep-close"}},
		"POST /operator/v1/merchants/{id}/environments/{env}/invoices/{invoice}/pay": {path: "/operator/v1/merchants/m1/environments/sandbox/invoices/1/pay",
			headers: map[string]string{"Idempotency-Key": "ep-pay"},
			hostile: []hostile{{"invoice not a number", "/operator/v1/merchants/m1/environments/sandbox/invoices/x1/pay", "", 404, "NOT_FOUND"}}},
		"GET /operator/v1/payouts/unresolved":  {path: "/operator/v1/payouts/unresolved"},
		"GET /operator/v1/activation-requests": {path: "/operator/v1/activation-requests"},
		"POST /operator/v1/users/password-reset": {path: "/operator/v1/users/password-reset", body: `{"email":"a@toko.example"}`,
			hostile: []hostile{{"control character", "", `{"email":"a\u0007@toko.example"}`, 422, "VALIDATION_ERROR"},
				{"empty email", "", `{"email":""}`, 422, "VALIDATION_ERROR"}}},
		"GET /operator/v1/merchants/{id}/settings-audit": {path: "/operator/v1/merchants/m1/settings-audit",
			hostile: []hostile{
				{"limit out of range", "/operator/v1/merchants/m1/settings-audit?limit=0", "", 400, "VALIDATION_ERROR"},
				{"bad environment", "/operator/v1/merchants/m1/settings-audit?environment=st%07ging", "", 400, "VALIDATION_ERROR"},
			}},
	}
}

// dbState fingerprints every table a request could write, but the rate
// limit buckets (which every authenticated call spends).
func dbState(t *testing.T, pool *pgxpool.Pool, environment string) string {
	t.Helper()
	tables := []string{"merchants", "merchant_environments", "api_keys", "accounts", "journal_entries", "postings", "disbursements",
		"settings_audit", "operator_audit", "batches", "invoices", "payout_events", "callbacks", "callback_secrets", "operator_requests"}
	var parts []string
	for _, table := range tables {
		where := ""
		if environment != "" {
			if table == "merchants" || table == "postings" || table == "operator_audit" || table == "operator_requests" {
				continue
			}
			where = " WHERE environment = '" + environment + "'"
		}
		var s string
		if err := pool.QueryRow(context.Background(), `SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') FROM `+table+` t`+where).Scan(&s); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		parts = append(parts, table+"="+s)
	}
	return strings.Join(parts, " ")
}

func routeKeys(rs []api.Route) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Method+" "+r.Pattern)
	}
	sort.Strings(out)
	return out
}

// TestEveryEndpointRejectsHostileRequestsAndChangesNothing sends every
// kind of bad request to every route of both APIs: each gets its
// documented error, no internals leak, and nothing is written.
func TestEveryEndpointRejectsHostileRequestsAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	eps := endpoints("dsb_none")
	var sends []struct {
		name, method, path, body, contentType string
		headers                               map[string]string
		status                                int
		code                                  string
		auth                                  bool
	}
	add := func(name, method, path, body, ct string, h map[string]string, status int, code string, auth bool) {
		sends = append(sends, struct {
			name, method, path, body, contentType string
			headers                               map[string]string
			status                                int
			code                                  string
			auth                                  bool
		}{name, method, path, body, ct, h, status, code, auth})
	}
	for _, key := range routeKeys(append(e.s.MerchantRoutes(), e.s.OperatorRoutes()...)) {
		ep, ok := eps[key]
		if !ok {
			t.Errorf("route %s has no case in endpoints(): add one", key)
			continue
		}
		method := strings.SplitN(key, " ", 2)[0]
		const js = "application/json"
		if !ep.public {
			add(key+" no auth", method, ep.path, ep.body, js, ep.headers, 401, "UNAUTHORIZED", false)
		}
		add(key+" wrong method", "DELETE", ep.path, "", "", nil, 405, "METHOD_NOT_ALLOWED", true)
		switch {
		case ep.body != "":
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(ep.body), &fields); err != nil || len(fields) == 0 {
				t.Fatalf("%s: the valid body must be a non-empty object", key)
			}
			var first string
			for k := range fields {
				first = k
			}
			rest := strings.TrimPrefix(ep.body, "{")
			add(key+" unknown field", method, ep.path, `{"zz_unknown":1,`+rest, js, ep.headers, 422, "VALIDATION_ERROR", true)
			add(key+" duplicate key", method, ep.path, `{"`+first+`":`+string(fields[first])+`,`+rest, js, ep.headers, 400, "INVALID_JSON", true)
			add(key+" trailing data", method, ep.path, ep.body+`{}`, js, ep.headers, 400, "INVALID_JSON", true)
			add(key+" not UTF-8", method, ep.path, "{\"zz\xff\":1,"+rest, js, ep.headers, 400, "INVALID_JSON", true)
			add(key+" not JSON", method, ep.path, `{"`+first+`":`, js, ep.headers, 400, "INVALID_JSON", true)
			if !ep.largeBodies {
				add(key+" over the body limit", method, ep.path, ep.body+strings.Repeat(" ", 17<<10), js, ep.headers, 413, "PAYLOAD_TOO_LARGE", true)
			}
			add(key+" wrong content type", method, ep.path, ep.body, "text/plain", ep.headers, 415, "UNSUPPORTED_MEDIA_TYPE", true)
		case method != "GET":
			add(key+" unexpected body", method, ep.path, `{"zz_unknown":1}`, js, ep.headers, 422, "VALIDATION_ERROR", true)
			add(key+" two values", method, ep.path, `{} {}`, js, ep.headers, 400, "INVALID_JSON", true)
			add(key+" not UTF-8", method, ep.path, "{\"\xff\":1}", js, ep.headers, 400, "INVALID_JSON", true)
			add(key+" over the body limit", method, ep.path, `{}`+strings.Repeat(" ", 2<<10), js, ep.headers, 413, "PAYLOAD_TOO_LARGE", true)
			add(key+" wrong content type", method, ep.path, `{"a":1}`, "text/plain", ep.headers, 415, "UNSUPPORTED_MEDIA_TYPE", true)
		}
		for _, h := range ep.hostile {
			path := ep.path
			if h.path != "" {
				path = h.path
			}
			ct := ""
			if h.body != "" {
				ct = js
			}
			add(key+" "+h.name, method, path, h.body, ct, ep.headers, h.status, h.code, true)
		}
	}
	before := dbState(t, e.pool, "")
	for _, c := range sends {
		t.Run(c.name, func(t *testing.T) {
			base := e.srv.URL
			if strings.HasPrefix(c.path, "/operator/") {
				base = e.op.URL
			}
			a := e.callWith(t, "", c.method, base+c.path, c.body, func(r *http.Request) {
				r.Header.Del("Content-Type")
				if c.contentType != "" {
					r.Header.Set("Content-Type", c.contentType)
				}
				for k, v := range c.headers {
					r.Header.Set(k, v)
				}
				switch {
				case c.auth && strings.HasPrefix(c.path, "/operator/"):
					r.Header.Set("Authorization", "Bearer "+operatorToken)
				case c.auth:
					r.SetBasicAuth(e.key, "")
				}
			})
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("got %d %s, want %d %s: %s", a.status, a.code(), c.status, c.code, a.raw)
			}
			if a.header.Get("X-Request-Id") == "" || a.header.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", a.header)
			}
			if c.status == 405 && a.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			for _, leak := range []string{"SQLSTATE", "goroutine", "pgx", "runtime.", "panic"} {
				if strings.Contains(a.raw, leak) {
					t.Errorf("answer leaks %q: %s", leak, a.raw)
				}
			}
		})
	}
	if after := dbState(t, e.pool, ""); after != before {
		t.Fatalf("hostile requests wrote:\n%s\n%s", before, after)
	}
}

// TestEnvironmentSeparation: for every merchant route, a key of one
// environment reads and changes only its own environment, both ways.
func TestEnvironmentSeparation(t *testing.T) {
	e := newEnv(t)
	keys := map[string]string{"sandbox": e.key, "production": activateProduction(t, e, "m1")}
	type marks struct{ id, url, secret string }
	own := map[string]marks{}
	for _, env := range []string{"sandbox", "production"} {
		// The same idempotency key and reference in both: two payouts.
		a := e.callWith(t, keys[env], "POST", e.srv.URL+"/v1/disbursements",
			`{"reference_id":"same-ref","bank_code":"bca","account_number":"1234567890","amount":150000}`,
			func(r *http.Request) { r.Header.Set("Idempotency-Key", "same-key") })
		s := e.call(t, keys[env], "PATCH", "/v1/settings", `{"callback_url":"https://`+env+`.example.com/cb"}`)
		id, _ := a.body["id"].(string)
		secret, _ := s.body["callback_secret"].(string)
		if a.status != 202 || a.header.Get("Idempotent-Replayed") != "" || s.status != 200 || secret == "" {
			t.Fatalf("%s setup: %d %s / %d %s", env, a.status, a.raw, s.status, s.raw)
		}
		own[env] = marks{id, "https://" + env + ".example.com/cb", secret}
	}
	if own["sandbox"].id == own["production"].id || own["sandbox"].secret == own["production"].secret {
		t.Fatal("the environments share a payout id or callback secret")
	}
	for _, dir := range [][2]string{{"sandbox", "production"}, {"production", "sandbox"}} {
		mine, other := dir[0], dir[1]
		eps := endpoints(own[other].id)
		routes := routeKeys(e.s.MerchantRoutes())
		// Rotate last: it retires the key the other calls use.
		sort.SliceStable(routes, func(i, j int) bool {
			return !strings.Contains(routes[i], "rotate") && strings.Contains(routes[j], "rotate")
		})
		before := dbState(t, e.pool, other)
		for _, route := range routes {
			ep, ok := eps[route]
			if !ok {
				t.Errorf("route %s has no case in endpoints(): add one", route)
				continue
			}
			method := strings.SplitN(route, " ", 2)[0]
			body := strings.ReplaceAll(ep.body, `"ep-1"`, `"same-ref"`)
			a := e.callWith(t, keys[mine], method, e.srv.URL+ep.path, body, func(r *http.Request) {
				for k, v := range ep.headers {
					r.Header.Set(k, v)
				}
				if route == "POST /v1/disbursements" {
					r.Header.Set("Idempotency-Key", "same-key") // the other environment's key: its payout must not answer
				}
			})
			if a.status != ep.crossStatus {
				t.Errorf("%s key, %s: %d %s, want %d", mine, route, a.status, a.raw, ep.crossStatus)
			}
			for what, v := range map[string]string{"payout id": own[other].id, "callback url": own[other].url, "callback secret": own[other].secret,
				"environment": `"environment":"` + other + `"`} {
				if strings.Contains(a.raw, v) {
					t.Errorf("%s key, %s: the answer shows the %s's %s: %s", mine, route, other, what, a.raw)
				}
			}
		}
		if after := dbState(t, e.pool, other); after != before {
			t.Errorf("calls with the %s key changed %s:\n%s\n%s", mine, other, before, after)
		}
	}
}
