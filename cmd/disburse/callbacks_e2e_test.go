package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/callbacks/signature"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/reports"
)

// TestMerchantIsToldEndToEnd follows payouts from the API to the merchant's
// callback endpoint through every stage on the real Kafka and Postgres:
// each terminal status (and a batch's completion) arrives signed with the
// secret GET /v1/settings shows, under a stable callback id.
func TestMerchantIsToldEndToEnd(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t))
	_, settings, _ := call(t, p.api.URL, p.key, "GET", "/v1/settings", nil, nil)
	secret, _ := settings["callback_secret"].(string)
	if secret == "" {
		t.Fatalf("no callback secret in settings: %v", settings)
	}

	var mu sync.Mutex
	got := map[string]map[string]bool{} // callback type -> subject ids
	ids := map[string]string{}          // callback id -> subject, to check stability
	bad := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := signature.Verify(secret, r.Header.Get(signature.HeaderName), body, time.Minute, time.Now()); err != nil {
			bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var cb struct {
			ID   string         `json:"id"`
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &cb); err != nil || cb.ID != r.Header.Get("X-Callback-Id") {
			bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		subject, _ := cb.Data["id"].(string)
		if subject == "" {
			subject, _ = cb.Data["batch_id"].(string)
		}
		if prev, ok := ids[cb.ID]; ok && prev != subject {
			bad++
		}
		ids[cb.ID] = subject
		if got[cb.Type] == nil {
			got[cb.Type] = map[string]bool{}
		}
		got[cb.Type][subject] = true
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	if code, s, _ := call(t, p.api.URL, p.key, "PATCH", "/v1/settings", nil, map[string]string{"callback_url": recv.URL + "/hooks/disburse"}); code != 200 {
		t.Fatalf("set callback_url: %d %v", code, s)
	}

	type sent struct{ subject, typ string }
	var want []sent
	// cb-first-returned: the bank's first definite answer is RETURNED (the
	// transfer's response hangs past the timeout; the first status query
	// says RETURNED). The merchant must still hear COMPLETED, then REVERSED.
	firstReturned := ""
	for ref, acct := range map[string]string{"cb-ok": "1234567895", "cb-bad": "1234560000", "cb-returned": "1234563333", "cb-first-returned": "1234564444"} {
		code, d, _ := call(t, p.api.URL, p.key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": ref}, payoutBody(ref, acct, 50_000))
		id, _ := d["id"].(string)
		if code != 202 || id == "" {
			t.Fatalf("create %s: %d %v", ref, code, d)
		}
		switch ref {
		case "cb-ok":
			want = append(want, sent{id, "disbursement.completed"})
		case "cb-bad":
			want = append(want, sent{id, "disbursement.failed"})
		case "cb-returned":
			want = append(want, sent{id, "disbursement.reversed"})
		case "cb-first-returned":
			firstReturned = id
			want = append(want, sent{id, "disbursement.completed"}, sent{id, "disbursement.reversed"})
		}
	}
	code, acc, _ := postBatch(t, p.api.URL, p.key, "reference_id=cb-batch", "cb-batch",
		"reference_id,bank_code,account_number,amount\ncb-b1,bca,1234567895,20000\ncb-b2,bni,1234567895,30000\n")
	if code != 202 {
		t.Fatalf("batch: %d %v", code, acc)
	}
	want = append(want, sent{acc["id"].(string), "batch.completed"})

	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, w := range want {
			if !got[w.typ][w.subject] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("%d callbacks never arrived; got %v", missing, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad > 0 {
		t.Fatalf("%d callbacks had a bad signature, body or unstable id", bad)
	}
	fixture.Audit(t, p.pool)

	// Both changes of the first-returned payout reach the reports too.
	deadline = time.Now().Add(30 * time.Second)
	for {
		var statuses []string
		q := "SELECT status FROM " + p.reports.Database() + ".payout_events WHERE disbursement_id = " + reports.Quote(firstReturned) + " ORDER BY version"
		err := p.reports.Engine().QueryJSON(context.Background(), q, func(row []byte) error {
			var r struct{ Status string }
			if err := json.Unmarshal(row, &r); err != nil {
				return err
			}
			statuses = append(statuses, r.Status)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(statuses, ","), "COMPLETED,REVERSED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reports hold %v for the payout whose first answer was RETURNED; want COMPLETED then REVERSED", statuses)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
