package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks/signature"
	"github.com/disburse/disburse/client"
	"github.com/disburse/disburse/internal/fixture"
)

// lossyTransport delivers every request but loses the answer of the first
// n: the client sees an error after the server acted, as on a cut link.
type lossyTransport struct {
	lose atomic.Int32
	sent atomic.Int32
	keys []string
}

func (l *lossyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	l.sent.Add(1)
	l.keys = append(l.keys, r.Header.Get("Idempotency-Key"))
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && l.lose.Add(-1) >= 0 {
		resp.Body.Close()
		return nil, errors.New("connection reset (test)")
	}
	return resp, err
}

// TestGoClient drives the merchant API through the client package: a
// create call whose answer is lost is retried with the same
// Idempotency-Key and pays once; iterators follow every cursor page;
// errors are typed; VerifyCallback accepts disburse's signature.
func TestGoClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	lossy := &lossyTransport{}
	c := client.New(e.srv.URL, e.key)
	c.HTTP = &http.Client{Transport: lossy}
	c.RetryWait = 10 * time.Millisecond

	lossy.lose.Store(2)
	var replayed bool
	d, err := c.CreateDisbursement(ctx, client.DisbursementRequest{ReferenceID: "cl-1", BankCode: "bca", AccountNumber: "1234567890",
		Amount: 150000, Metadata: map[string]string{"order": "1"}}, client.Replayed(&replayed))
	if err != nil || d.Status != client.StatusPending || !replayed {
		t.Fatalf("create through two lost answers: %+v %v (replayed %v)", d, err, replayed)
	}
	if lossy.sent.Load() != 3 || lossy.keys[0] == "" || lossy.keys[0] != lossy.keys[1] || lossy.keys[1] != lossy.keys[2] {
		t.Fatalf("sent %d times with keys %v: want 3 tries with one key", lossy.sent.Load(), lossy.keys)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements WHERE reference_id = 'cl-1'`); n != 1 {
		t.Fatalf("%d payouts for one call", n)
	}
	for i := range 4 {
		if _, err := c.CreateDisbursement(ctx, client.DisbursementRequest{ReferenceID: fmt.Sprintf("cl-%d", i+2), BankCode: "bni",
			AccountNumber: "1234567890", Amount: 150000}); err != nil {
			t.Fatal(err)
		}
	}
	var refs []string
	for d, err := range c.ListDisbursements(ctx, client.DisbursementFilter{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, d.ReferenceID)
	}
	if strings.Join(refs, ",") != "cl-5,cl-4,cl-3,cl-2,cl-1" {
		t.Fatalf("listed %v", refs)
	}
	n := 0
	for range c.ListDisbursements(ctx, client.DisbursementFilter{BankCode: "bni", Limit: 1}) {
		n++
		if n == 2 {
			break // an iterator stops when the loop does
		}
	}
	got, err := c.GetDisbursement(ctx, d.ID)
	if err != nil || got.Metadata["order"] != "1" {
		t.Fatalf("get: %+v %v", got, err)
	}
	_, err = c.GetDisbursement(ctx, "dsb_nope")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "NOT_FOUND" || apiErr.RequestID == "" {
		t.Fatalf("missing payout: %v", err)
	}
	_, err = c.CreateDisbursement(ctx, client.DisbursementRequest{ReferenceID: "cl-bad", BankCode: "bca", AccountNumber: "1234567890", Amount: -1})
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || len(apiErr.Fields) == 0 {
		t.Fatalf("invalid payout: %v", err)
	}
	b, err := c.Balance(ctx)
	if err != nil || b.Currency != "IDR" {
		t.Fatalf("balance: %+v %v", b, err)
	}
	var moves int
	for _, err := range c.BalanceTransactions(ctx, client.Period{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		moves++
	}
	if moves != 1 { // the demo deposit; the payouts are not debited without the ledger stage
		t.Errorf("%d statement lines, want 1", moves)
	}
	a, err := c.CreateBatch(ctx, client.BatchRequest{ReferenceID: "clb", Items: []client.DisbursementRequest{
		{ReferenceID: "clb-1", BankCode: "bca", AccountNumber: "1234567890", Amount: 100000}}})
	if err != nil || a.ItemCount != 1 {
		t.Fatalf("batch: %+v %v", a, err)
	}
	var batches, items int
	for _, err := range c.ListBatches(ctx, client.BatchFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		batches++
	}
	for _, err := range c.ListBatchItems(ctx, a.ID, "") {
		if err != nil {
			t.Fatal(err)
		}
		items++
	}
	if batches != 1 || items != 1 {
		t.Errorf("%d batches, %d items", batches, items)
	}
	// Cancel: a PENDING payout (the ledger stage is not running) and a
	// batch; both are safe to repeat.
	cancelled, err := c.CancelDisbursement(ctx, d.ID)
	if err != nil || cancelled.Status != client.StatusCancelled {
		t.Fatalf("cancel: %+v %v", cancelled, err)
	}
	if again, err := c.CancelDisbursement(ctx, d.ID); err != nil || again.Status != client.StatusCancelled || again.Version != cancelled.Version {
		t.Fatalf("cancel again: %+v %v", again, err)
	}
	if _, err := c.CancelDisbursement(ctx, "dsb_nope"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("cancel a missing payout: %v", err)
	}
	bc, err := c.CancelBatch(ctx, a.ID)
	if err != nil || bc.BatchID != a.ID || bc.Cancelled != 1 || bc.NotCancelled != 0 {
		t.Fatalf("cancel batch: %+v %v", bc, err)
	}
	banks, err := c.Banks(ctx)
	if err != nil || len(banks) == 0 {
		t.Fatalf("banks: %v", err)
	}
	if _, err := c.Settings(ctx); err != nil {
		t.Fatal(err)
	}
	for _, err := range c.Events(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
	}
	spec, err := c.OpenAPI(ctx)
	if err != nil || !strings.HasPrefix(string(spec), "openapi: 3") {
		t.Fatalf("openapi: %v", err)
	}
	rc, err := c.BalanceTransactionsCSV(ctx, client.Period{})
	if err != nil {
		t.Fatal(err)
	}
	csvBody, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.HasPrefix(string(csvBody), "id,created_at,type") {
		t.Fatalf("statement CSV: %s", csvBody)
	}

	body := []byte(`{"id":"cb_1","type":"disbursement.completed"}`)
	now := time.Now()
	header := signature.Sign(now, body, "whsec_test")
	if err := client.VerifyCallback("whsec_test", header, body, 5*time.Minute, now); err != nil {
		t.Fatalf("a genuine signature: %v", err)
	}
	if err := client.VerifyCallback("whsec_test", header, append(body, ' '), 5*time.Minute, now); err == nil {
		t.Fatal("a changed body verified")
	}
}

// clientCalls names the client method of every merchant route: a new
// route fails TestClientCoversEveryMerchantRoute until the client has a
// typed call for it (issue 17: a call for every merchant operation).
var clientCalls = map[string]string{
	"POST /v1/disbursements":                   "CreateDisbursement",
	"GET /v1/disbursements":                    "ListDisbursements",
	"GET /v1/disbursements/{id}":               "GetDisbursement",
	"POST /v1/disbursements/{id}/cancel":       "CancelDisbursement",
	"POST /v1/batches":                         "CreateBatch",
	"GET /v1/batches":                          "ListBatches",
	"GET /v1/batches/{id}":                     "GetBatch",
	"GET /v1/batches/{id}/items":               "ListBatchItems",
	"POST /v1/batches/{id}/cancel":             "CancelBatch",
	"GET /v1/balance":                          "Balance",
	"GET /v1/balance/transactions":             "BalanceTransactions",
	"GET /v1/balance/transactions.csv":         "BalanceTransactionsCSV",
	"GET /v1/banks":                            "Banks",
	"POST /v1/account-inquiry":                 "AccountInquiry",
	"GET /v1/settings":                         "Settings",
	"PATCH /v1/settings":                       "UpdateSettings",
	"POST /v1/settings/secret-key/rotate":      "RotateSecretKey",
	"GET /v1/events":                           "Events",
	"GET /v1/callbacks":                        "Callbacks",
	"GET /v1/callbacks/{id}":                   "GetCallback",
	"POST /v1/callbacks/{id}/redeliver":        "RedeliverCallback",
	"POST /v1/settings/callback-secret/rotate": "RotateCallbackSecret",
	"GET /v1/reports/summary":                  "ReportSummary",
	"GET /v1/reports/disbursements.csv":        "ReportCSV",
	"GET /v1/openapi.yaml":                     "OpenAPI",
	"GET /v1/keys":                             "Keys",
	"POST /v1/keys":                            "CreateKey",
	"POST /v1/keys/{id}/revoke":                "RevokeKey",
	"POST /v1/batches/quote":                   "QuoteBatch",
	"GET /v1/controls":                         "Controls",
	"PUT /v1/controls/velocity":                "SetVelocityLimits",
	"POST /v1/controls/pause":                  "PausePayouts",
	"POST /v1/controls/resume":                 "ResumePayouts",
	"POST /v1/disbursements/{id}/approve":      "ApproveDisbursement",
	"POST /v1/disbursements/{id}/reject":       "RejectDisbursement",
	"POST /v1/batches/{id}/approve":            "ApproveBatch",
	"POST /v1/batches/{id}/reject":             "RejectBatch",
	"GET /v1/approvals":                        "Approvals",
	"GET /v1/approvals/policy":                 "ApprovalPolicy",
	"PUT /v1/approvals/policy":                 "SetApprovalPolicy",
	"POST /v1/account-inquiries":               "CreateAccountInquiries",
	"GET /v1/account-inquiries/{id}":           "GetAccountInquiries",
}

// TestClientCoversEveryMerchantRoute: every merchant route has its typed
// call in the client package, and every call named here exists.
func TestClientCoversEveryMerchantRoute(t *testing.T) {
	ct := reflect.TypeOf(&client.Client{})
	seen := map[string]bool{}
	for _, r := range (&api.Server{}).MerchantRoutes() {
		k := r.Method + " " + r.Pattern
		seen[k] = true
		name, ok := clientCalls[k]
		if !ok {
			t.Errorf("%s has no client call: add one to package client and to clientCalls", k)
			continue
		}
		if _, ok := ct.MethodByName(name); !ok {
			t.Errorf("%s: client.Client has no method %s", k, name)
		}
	}
	for k := range clientCalls {
		if !seen[k] {
			t.Errorf("clientCalls names %s, which the API does not serve", k)
		}
	}
}
