package api_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestControlsCeilingAndPauses(t *testing.T) {
	e := newEnv(t)
	const op = "/operator/v1/merchants/m1/environments/sandbox"
	if a := e.operatorCall(t, "PUT", op+"/velocity-ceiling", `{"max_amount_per_day":5000000,"max_count_per_hour":100}`); a.status != 200 {
		t.Fatalf("ceiling: %d %s", a.status, a.raw)
	}
	// Over the ceiling, or no limit where the ceiling has one: refused, field by field.
	a := e.call(t, e.key, "PUT", "/v1/controls/velocity", `{"max_amount_per_day":6000000,"max_count_per_day":10}`)
	if a.status != 422 || !containsAll(a.raw, `"field":"max_amount_per_day","code":"OVER_CEILING"`, `"field":"max_count_per_hour","code":"OVER_CEILING"`) {
		t.Fatalf("over the ceiling: %d %s", a.status, a.raw)
	}
	a = e.call(t, e.key, "PUT", "/v1/controls/velocity", `{"max_amount_per_day":4000000,"max_count_per_hour":50,"max_amount_per_hour":1000000}`)
	if a.status != 200 || a.body["effective"].(map[string]any)["max_count_per_hour"] != 50.0 {
		t.Fatalf("within the ceiling: %d %s", a.status, a.raw)
	}
	// A lower ceiling lowers the merchant's limits with it.
	if a := e.operatorCall(t, "PUT", op+"/velocity-ceiling", `{"max_amount_per_day":3000000,"max_count_per_hour":100}`); a.status != 200 ||
		a.body["limits"].(map[string]any)["max_amount_per_day"] != 3_000_000.0 {
		t.Fatalf("lower ceiling: %d %s", a.status, a.raw)
	}

	// Two payouts stored PENDING; nothing runs the ledger stage here.
	for _, ref := range []string{"c-1", "c-2"} {
		if a := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/disbursements", `{"reference_id":"`+ref+`","bank_code":"bca","account_number":"1234567890","amount":150000}`,
			func(r *http.Request) { r.Header.Set("Idempotency-Key", ref) }); a.status != 202 {
			t.Fatalf("create: %d %s", a.status, a.raw)
		}
	}

	// The operator's pause is lifted only by the operator; a resume that
	// ends every pause queues the held payouts again.
	if a := e.operatorCall(t, "POST", op+"/pause", `{"reason":"fraud review"}`); a.status != 200 || a.body["operator_paused"] != true {
		t.Fatalf("operator pause: %d %s", a.status, a.raw)
	}
	if a := e.call(t, e.key, "POST", "/v1/controls/pause", ""); a.status != 200 || a.body["merchant_paused"] != true || a.body["pause_reason"] != "fraud review" {
		t.Fatalf("merchant pause: %d %s", a.status, a.raw)
	}
	before := e.requestRecords(t)
	if a := e.call(t, e.key, "POST", "/v1/controls/resume", ""); a.status != 409 || a.code() != "PAUSED_BY_OPERATOR" {
		t.Fatalf("merchant resumes the operator's pause: %d %s", a.status, a.raw)
	}
	if a := e.operatorCall(t, "POST", op+"/resume", ""); a.status != 200 || a.body["paused"] != true {
		t.Fatalf("operator resume with the merchant's pause left: %d %s", a.status, a.raw)
	}
	if e.requestRecords(t) != before {
		t.Fatal("a resume that left the environment paused queued payouts")
	}
	if a := e.call(t, e.key, "POST", "/v1/controls/resume", ""); a.status != 200 || a.body["paused"] != false || a.body["paused_at"] != nil {
		t.Fatalf("merchant resume: %d %s", a.status, a.raw)
	}
	if got := e.requestRecords(t) - before; got != 2 {
		t.Fatalf("the resume queued %d request records, want the 2 PENDING payouts", got)
	}

	// Every change is in the settings audit log, with who made it.
	audit := e.operatorCall(t, "GET", "/operator/v1/merchants/m1/settings-audit", "")
	if audit.status != 200 || !containsAll(audit.raw, `"setting":"velocity_limits"`, `"setting":"velocity_ceiling"`, `"setting":"payouts_paused"`, `"actor":"operator"`) {
		t.Fatalf("settings audit: %d %.600s", audit.status, audit.raw)
	}

	// A key without the settings scope may not pull the switch.
	reader, _ := e.issueKey(t, "reader", "payouts:read")
	if a := e.call(t, reader, "POST", "/v1/controls/pause", ""); a.status != 403 || a.code() != "INSUFFICIENT_SCOPE" {
		t.Fatalf("reader pauses: %d %s", a.status, a.raw)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
