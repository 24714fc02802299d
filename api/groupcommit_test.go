package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

type createCall struct {
	key, body string
}

func (e *env) create(t *testing.T, url string, c createCall) answer {
	t.Helper()
	return e.callWith(t, e.key, "POST", url+"/v1/disbursements", c.body, func(r *http.Request) {
		r.Header.Set("Idempotency-Key", c.key)
	})
}

func createBody(ref string, amount int) string {
	return fmt.Sprintf(`{"reference_id":%q,"bank_code":"bca","account_number":"1234567890","amount":%d}`, ref, amount)
}

// requestRecords reads the requests topic from the start until it has
// seen want distinct disbursement ids (or 20 s passed) and returns the ids.
func requestRecords(t *testing.T, topics events.Topics, want int) map[string]int {
	t.Helper()
	cl, err := processor.NewClient(testenv.Kafka(t), kgo.ConsumeTopics(topics.Requests),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(seen) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var req events.Request
			if err := json.Unmarshal(r.Value, &req); err != nil {
				t.Errorf("request record: %v", err)
			}
			seen[req.DisbursementID]++
		})
	}
	return seen
}

// TestGroupCommitAnswersAsOneAtATime: concurrent creates that land in the
// same groups (repeated keys with the same body, the same key with another
// body, one reference_id under two keys) get the answers one-at-a-time
// creates give: one payout per key, replays for the same body, 409
// IDEMPOTENCY_KEY_REUSED for another body, 409 DUPLICATE_REFERENCE_ID for the
// second key of a reference; every 202's payout is stored and its request
// record is on the topic; asked again one at a time afterwards, every
// request gets the same answer.
func TestGroupCommitAnswersAsOneAtATime(t *testing.T) {
	e := newEnv(t)
	// A long window makes the groups big.
	e.s.GroupCommit = api.GroupCommit{Window: 20 * time.Millisecond, Max: 64}
	var calls []createCall
	const keys = 12
	for k := range keys {
		for range 3 {
			calls = append(calls, createCall{fmt.Sprint("gk-", k), createBody(fmt.Sprint("gref-", k), 150000)})
		}
		// The same key with another amount.
		calls = append(calls, createCall{fmt.Sprint("gk-", k), createBody(fmt.Sprint("gref-", k), 160000)})
	}
	const dups = 6
	for d := range dups { // two keys per reference
		calls = append(calls, createCall{fmt.Sprint("dk-a-", d), createBody(fmt.Sprint("dref-", d), 150000)},
			createCall{fmt.Sprint("dk-b-", d), createBody(fmt.Sprint("dref-", d), 150000)})
	}
	answers := make([]answer, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = e.create(t, e.srv.URL, c)
		}()
	}
	wg.Wait()

	type keyState struct {
		id       string
		body     string
		creators int
	}
	byKey := map[string]*keyState{}
	refWinners := map[string]int{}
	for i, c := range calls {
		a := answers[i]
		switch {
		case a.status == 202:
			ks := byKey[c.key]
			if ks == nil {
				ks = &keyState{}
				byKey[c.key] = ks
			}
			id, _ := a.body["id"].(string)
			if ks.id != "" && (ks.id != id || ks.body != c.body) {
				t.Errorf("key %s: 202 for %s (%s) and %s (%s)", c.key, ks.id, ks.body, id, c.body)
			}
			ks.id, ks.body = id, c.body
			if a.header.Get("Idempotent-Replayed") != "true" {
				ks.creators++
			}
			refWinners[a.body["reference_id"].(string)]++
		case a.status == 409 && (a.code() == "IDEMPOTENCY_KEY_REUSED" || a.code() == "DUPLICATE_REFERENCE_ID"):
		default:
			t.Errorf("%s: %d %s", c.key, a.status, a.raw)
		}
	}
	if len(byKey) != keys+dups {
		t.Errorf("%d keys got a 202, want %d", len(byKey), keys+dups)
	}
	for k, ks := range byKey {
		if ks.creators != 1 {
			t.Errorf("key %s: %d answers created the payout, want 1", k, ks.creators)
		}
	}
	for d := range dups {
		if n := refWinners[fmt.Sprint("dref-", d)]; n != 1 {
			t.Errorf("reference dref-%d: %d keys got a 202, want 1", d, n)
		}
	}
	// Every concurrent answer is what one request at a time answers now.
	for i, c := range calls {
		again := e.create(t, e.srv.URL, c)
		if again.status != answers[i].status || again.code() != answers[i].code() || again.body["id"] != answers[i].body["id"] {
			t.Errorf("%s %s: concurrently %d %s, alone %d %s", c.key, c.body, answers[i].status, answers[i].raw, again.status, again.raw)
		}
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements`); n != keys+dups {
		t.Fatalf("%d payouts, want %d", n, keys+dups)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM payout_events WHERE status = 'PENDING'`); n != keys+dups {
		t.Fatalf("%d creation events, want %d", n, keys+dups)
	}
	seen := requestRecords(t, e.topics, keys+dups)
	for _, ks := range byKey {
		if seen[ks.id] == 0 {
			t.Errorf("payout %s answered 202 but its request record is not on the topic", ks.id)
		}
	}
	fixture.Audit(t, e.pool)
}

// TestGroupCommitFailedProduceAnswers503: when Kafka does not acknowledge
// a group's records, every create of the group answers 503 with
// Retry-After (the payouts are stored, PENDING); a retry with the same key
// through a working instance answers 202 as a replay and publishes.
func TestGroupCommitFailedProduceAnswers503(t *testing.T) {
	e := newEnv(t)
	// An instance whose Kafka client points at a closed port: nothing is
	// ever acknowledged.
	dead, err := processor.NewClient([]string{"127.0.0.1:1"}, kgo.RecordDeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	broken := e.newServer(e.pool)
	broken.Kafka = dead
	broken.GroupCommit = api.GroupCommit{Window: 20 * time.Millisecond}
	bsrv := httptest.NewServer(broken.Handler())
	t.Cleanup(bsrv.Close)

	const n = 8
	calls := make([]createCall, n)
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range calls {
		calls[i] = createCall{fmt.Sprint("pk-", i), createBody(fmt.Sprint("pref-", i), 150000)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = e.create(t, bsrv.URL, calls[i])
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 503 || a.code() != "SERVICE_UNAVAILABLE" || a.header.Get("Retry-After") == "" {
			t.Fatalf("create %d with Kafka down: %d %s (Retry-After %q), want 503 SERVICE_UNAVAILABLE", i, a.status, a.raw, a.header.Get("Retry-After"))
		}
	}
	ids := map[string]bool{}
	for i, c := range calls {
		a := e.create(t, e.srv.URL, c)
		if a.status != 202 || a.header.Get("Idempotent-Replayed") != "true" || a.body["status"] != "PENDING" {
			t.Fatalf("retry %d: %d %s (replayed %q), want 202 replay of the PENDING payout", i, a.status, a.raw, a.header.Get("Idempotent-Replayed"))
		}
		ids[a.body["id"].(string)] = true
	}
	seen := requestRecords(t, e.topics, n)
	for id := range ids {
		if seen[id] == 0 {
			t.Errorf("payout %s: retried to 202 but no request record on the topic", id)
		}
	}
	if got := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements`); got != n {
		t.Fatalf("%d payouts, want %d", got, n)
	}
}
