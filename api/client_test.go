package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
