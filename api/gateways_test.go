package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/connectors/httpbank"
)

// TestInquiriesGoToTheEnvironmentsGateway: with a gateway per environment,
// a sandbox key's inquiries reach the sandbox gateway only, and an
// environment without one answers 503 BANK_UNAVAILABLE, for inquiries and
// for the holder-name check of a payout, storing nothing.
func TestInquiriesGoToTheEnvironmentsGateway(t *testing.T) {
	e := newEnv(t)
	live := activateProduction(t, e, "m1")
	sandboxBank := banksim.New(banksim.Options{})
	srv := httptest.NewServer(sandboxBank.Handler())
	defer srv.Close()
	e.s.Banks = map[string]connectors.Connector{"sandbox": httpbank.New(srv.URL)}
	body := `{"bank_code":"bca","account_number":"1234567890"}`
	if a := e.call(t, e.key, "POST", "/v1/account-inquiry", body); a.status != 200 || a.body["status"] != "VALID" {
		t.Fatalf("sandbox inquiry: %d %s", a.status, a.raw)
	}
	if a := e.call(t, live, "POST", "/v1/account-inquiry", body); a.status != 503 || a.code() != "BANK_UNAVAILABLE" {
		t.Fatalf("production inquiry without a production gateway: %d %s", a.status, a.raw)
	}
	before := dbState(t, e.pool, "production")
	a := e.callWith(t, live, "POST", e.srv.URL+"/v1/disbursements",
		`{"reference_id":"gw-1","bank_code":"bca","account_number":"1234567890","amount":150000,"account_holder_name":"Budi"}`,
		func(r *http.Request) { r.Header.Set("Idempotency-Key", "gw-1") })
	if a.status != 503 || a.code() != "BANK_UNAVAILABLE" {
		t.Fatalf("production payout with a holder name and no gateway: %d %s", a.status, a.raw)
	}
	if after := dbState(t, e.pool, "production"); after != before {
		t.Fatal("the refused payout wrote to production")
	}
}
