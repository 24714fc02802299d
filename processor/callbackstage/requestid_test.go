package callbackstage_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/internal/trace"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// syncBuffer is a log sink the worker's goroutines may write at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCallbackCarriesRequestID: a payout created under an X-Request-Id,
// and a batch, keep their request id through their callbacks: the POST
// carries it as X-Request-Id beside X-Disbursement-Id (or X-Batch-Id), the worker logs it beside the disbursement
// (or batch) id on every attempt, and disburse trace shows it on the
// callback's line. A payout with no request id gets no header.
func TestCallbackCarriesRequestID(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var mu sync.Mutex
	headers := map[string]string{} // callback id -> X-Request-Id received
	rc := newReceiver(t, func() string { s, _ := h.store.Secret(ctx, "m1", payout.Sandbox); return s },
		func(id string, attempt int, r *http.Request) int {
			mu.Lock()
			headers[id] = r.Header.Get("X-Request-Id") + "|" + r.Header.Get("X-Disbursement-Id") + "|" + r.Header.Get("X-Batch-Id")
			mu.Unlock()
			if attempt == 1 {
				return http.StatusBadGateway // one retry: both attempts must log the id
			}
			return http.StatusOK
		})
	h.merchant(t, "m1", rc.srv.URL)
	var logs syncBuffer
	w := &callbacks.Worker{Backoff: retry.Backoff{Base: 20 * time.Millisecond, Max: 50 * time.Millisecond}, PollInterval: 20 * time.Millisecond}
	w.Log = slog.New(slog.NewTextHandler(&logs, nil))
	h.start(t, w)

	store := payout.NewStore(h.pool)
	req := func(ref string) payout.Request {
		return payout.Request{ReferenceID: ref, BankCode: "bca", AccountNumber: "1234567890", Amount: 10_000, Currency: "IDR"}
	}
	with, _, err := store.Create(payout.WithRequestID(ctx, "rid-cb-1"), "m1", payout.Sandbox, "k-rid", req("r-rid"))
	if err != nil {
		t.Fatal(err)
	}
	without, _, err := store.Create(ctx, "m1", payout.Sandbox, "k-norid", req("r-norid"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(ctx, `INSERT INTO batches (id, merchant_id, environment, idempotency_key, request_hash, reference_id, mode, status, request_id)
		VALUES ('bat_rid', 'm1', 'sandbox', 'kb', '\x00', 'payroll', 'partial', 'COMPLETED', 'rid-batch-1')`); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, d := range fixture.Move(t, h.pool, []string{with.ID, without.ID}, payout.Completed) {
		recs = append(recs, processor.StatusEvent(h.topics.Status, d))
	}
	recs = append(recs, processor.JSONRecord(h.topics.Batches, "m1", events.BatchCompleted{BatchID: "bat_rid", MerchantID: "m1",
		Environment: payout.Sandbox, ReferenceID: "payroll", Status: "COMPLETED", Currency: "IDR", CompletedAt: time.Now()}))
	if err := processor.Produce(ctx, h.producer, recs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "three callbacks delivered", func() bool { return rc.deliveredCount() == 3 })

	ids := map[string]string{ // subject -> callback id
		with.ID:    callbacks.ID("disbursement", with.ID, 3),
		without.ID: callbacks.ID("disbursement", without.ID, 3),
		"bat_rid":  callbacks.ID("batch", "bat_rid", 0),
	}
	want := map[string]string{with.ID: "rid-cb-1|" + with.ID + "|", without.ID: "|" + without.ID + "|", "bat_rid": "rid-batch-1||bat_rid"}
	mu.Lock()
	for subject, cb := range ids {
		if headers[cb] != want[subject] {
			t.Errorf("callback of %s: X-Request-Id|X-Disbursement-Id|X-Batch-Id %q, want %q", subject, headers[cb], want[subject])
		}
	}
	mu.Unlock()
	// The receiver counts a delivery before the worker records and logs it.
	lines := []string{
		`msg="callback attempt failed; will retry" callback_id=` + ids[with.ID] + ` disbursement_id=` + with.ID + ` request_id=rid-cb-1`,
		`msg="callback delivered" callback_id=` + ids[with.ID] + ` disbursement_id=` + with.ID + ` request_id=rid-cb-1`,
		`msg="callback delivered" callback_id=` + ids["bat_rid"] + ` batch_id=bat_rid request_id=rid-batch-1`,
	}
	logged := func() []string {
		var missing []string
		for _, line := range lines {
			if !strings.Contains(logs.String(), line) {
				missing = append(missing, line)
			}
		}
		return missing
	}
	for deadline := time.Now().Add(10 * time.Second); len(logged()) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if missing := logged(); len(missing) > 0 {
		t.Errorf("log lacks %q:\n%s", missing, logs.String())
	}

	tl, err := trace.Build(ctx, h.pool, with.ID)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_ = tl.Write(&b)
	if !strings.Contains(b.String(), "callback "+ids[with.ID]+" disbursement.completed (X-Request-Id rid-cb-1)") {
		t.Errorf("trace does not show the callback's request id:\n%s", b.String())
	}
}
