package callbacks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/callbacks/signature"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var policy = callbacks.Policy{AllowInsecureSandbox: true}

// post is one POST the endpoint received.
type post struct {
	id     string   // X-Callback-Id
	events []string // the callback ids carried, in order
}

// endpoint is a merchant's callback endpoint on loopback that verifies every
// signature and parses single and batched bodies.
type endpoint struct {
	t       *testing.T
	secret  string
	respond func(n int) int // status for the n-th POST (from 1)
	delay   time.Duration
	srv     *httptest.Server

	mu        sync.Mutex
	posts     []post
	okEvents  map[string]int // event id -> times in a 2xx POST
	inFlight  int
	maxFlight int
}

func newEndpoint(t *testing.T, secret string, delay time.Duration, respond func(n int) int) *endpoint {
	ep := &endpoint{t: t, secret: secret, respond: respond, delay: delay, okEvents: map[string]int{}}
	ep.srv = httptest.NewServer(http.HandlerFunc(ep.serve))
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ep.mu.Lock()
	ep.inFlight++
	ep.maxFlight = max(ep.maxFlight, ep.inFlight)
	ep.mu.Unlock()
	time.Sleep(ep.delay)

	p := post{id: r.Header.Get("X-Callback-Id")}
	if err := signature.Verify(ep.secret, r.Header.Get(signature.HeaderName), body, time.Minute, time.Now()); err != nil {
		ep.t.Errorf("POST %s: signature: %v", p.id, err)
	}
	var env struct {
		ID     string            `json:"id"`
		Type   string            `json:"type"`
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		ep.t.Errorf("POST %s: body: %v", p.id, err)
	}
	if env.ID != p.id {
		ep.t.Errorf("body id %q, X-Callback-Id %q", env.ID, p.id)
	}
	if env.Type == callbacks.BatchType {
		for _, ev := range env.Events {
			var one struct{ ID, Type string }
			if err := json.Unmarshal(ev, &one); err != nil || one.ID == "" || one.Type != callbacks.TypeBatchCompleted {
				ep.t.Errorf("POST %s: event %s: %v", p.id, ev, err)
			}
			p.events = append(p.events, one.ID)
		}
	} else {
		p.events = []string{env.ID}
	}

	ep.mu.Lock()
	ep.posts = append(ep.posts, p)
	status := ep.respond(len(ep.posts))
	if status >= 200 && status <= 299 {
		for _, id := range p.events {
			ep.okEvents[id]++
		}
	}
	ep.inFlight--
	ep.mu.Unlock()
	w.WriteHeader(status)
}

func (ep *endpoint) delivered() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.okEvents)
}

// setup makes a sandbox merchant whose callbacks go to an endpoint, with
// the given delivery settings, and returns the pool, the store and the
// environment's signing secret.
func setup(t *testing.T, id string, pool *pgxpool.Pool, store *callbacks.Store, url string, batch, concurrency int) string {
	t.Helper()
	ctx := context.Background()
	fixture.Merchant(t, pool, id, 0, merchant.Settings{})
	if err := store.SetURL(ctx, policy, id, payout.Sandbox, url); err != nil {
		t.Fatal(err)
	}
	if _, err := merchant.NewStore(pool).UpdateAccess(ctx, id, payout.Sandbox, "test", time.Now(),
		merchant.AccessChange{CallbackBatchSize: &batch, CallbackConcurrency: &concurrency}); err != nil {
		t.Fatal(err)
	}
	secret, err := store.Secret(ctx, id, payout.Sandbox)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// enqueue records n batch.completed callbacks for the merchant.
func enqueue(t *testing.T, store *callbacks.Store, merchantID, tag string, n int) []string {
	t.Helper()
	var cbs []callbacks.New
	var ids []string
	at := time.Now().Add(-time.Minute)
	for i := range n {
		c := callbacks.ForBatch(events.BatchCompleted{MerchantID: merchantID, Environment: payout.Sandbox,
			BatchID: fmt.Sprintf("%s-%s-%04d", merchantID, tag, i), Status: "COMPLETED", TotalCount: 1, Currency: "IDR",
			CompletedAt: at.Add(time.Duration(i) * time.Millisecond)})
		cbs = append(cbs, c)
		ids = append(ids, c.ID)
	}
	got, err := store.Enqueue(context.Background(), cbs)
	if err != nil || got != n {
		t.Fatalf("enqueue: %d, %v", got, err)
	}
	return ids
}

// run starts a worker until the test ends.
func run(t *testing.T, w *callbacks.Worker) {
	t.Helper()
	w.Policy, w.Log = policy, quiet
	if w.PollInterval == 0 {
		w.PollInterval = 20 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statuses counts the merchant's callbacks by (status, attempts).
func statuses(t *testing.T, pool *pgxpool.Pool, merchantID string) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT status || '/' || attempts, count(*) FROM callbacks
		WHERE merchant_id = $1 GROUP BY 1`, merchantID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

// TestBatchedDelivery: 250 pending callbacks of an endpoint with batch size
// 100 arrive as 3 signed POSTs (100, 100, 50) carrying every event once;
// each callback records one delivered attempt. A single-delivery endpoint
// beside it still gets one POST per callback.
func TestBatchedDelivery(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	store := callbacks.NewStore(pool)
	ok := func(int) int { return http.StatusOK }
	batched := newEndpoint(t, "", 0, ok)
	batched.secret = setup(t, "mbatch", pool, store, batched.srv.URL, 100, 4)
	single := newEndpoint(t, "", 0, ok)
	single.secret = setup(t, "msingle", pool, store, single.srv.URL, 1, 4)
	want := enqueue(t, store, "mbatch", "bulk", 250)
	wantSingle := enqueue(t, store, "msingle", "one", 5)

	start := time.Now()
	run(t, &callbacks.Worker{Store: store})
	waitFor(t, 20*time.Second, "every callback delivered", func() bool {
		return batched.delivered() == len(want) && single.delivered() == len(wantSingle)
	})
	waitFor(t, 5*time.Second, "every outcome recorded", func() bool {
		return statuses(t, pool, "mbatch")["delivered/1"] == 250 && statuses(t, pool, "msingle")["delivered/1"] == 5
	})
	t.Logf("255 callbacks delivered and recorded in %s", time.Since(start).Round(time.Millisecond))

	batched.mu.Lock()
	defer batched.mu.Unlock()
	if len(batched.posts) != 3 {
		t.Fatalf("%d POSTs, want 3", len(batched.posts))
	}
	// The three POSTs go out at once, so they arrive in any order.
	var sizes []int
	seen := map[string]bool{}
	for _, p := range batched.posts {
		sizes = append(sizes, len(p.events))
		for _, id := range p.events {
			if seen[id] {
				t.Errorf("event %s sent twice", id)
			}
			seen[id] = true
		}
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{50, 100, 100}) {
		t.Errorf("POSTs carried %v events, want 50, 100 and 100", sizes)
	}
	for _, id := range want {
		if !seen[id] {
			t.Errorf("event %s never sent", id)
		}
	}
	if n := fixture.Count(t, pool, `SELECT count(*) FROM callback_attempts a JOIN callbacks c ON c.id = a.callback_id
		WHERE c.merchant_id = 'mbatch' AND a.status_code = 200`); n != 250 {
		t.Errorf("%d attempts logged, want 250", n)
	}
	single.mu.Lock()
	defer single.mu.Unlock()
	if len(single.posts) != 5 {
		t.Errorf("single delivery: %d POSTs, want 5", len(single.posts))
	}
}

// TestBatchedFailureRetriesWholeBatch: a POST answered 500 retries every
// callback in it, each recording the failed attempt, and the next POST
// (the same delivery id: the same callbacks) delivers them.
func TestBatchedFailureRetriesWholeBatch(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	store := callbacks.NewStore(pool)
	ep := newEndpoint(t, "", 0, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	ep.secret = setup(t, "mfail", pool, store, ep.srv.URL, 100, 4)
	want := enqueue(t, store, "mfail", "retry", 40)

	run(t, &callbacks.Worker{Store: store, Backoff: retry.Backoff{Base: 50 * time.Millisecond, Max: 50 * time.Millisecond}})
	waitFor(t, 20*time.Second, "every callback delivered", func() bool { return ep.delivered() == len(want) })
	waitFor(t, 5*time.Second, "every outcome recorded", func() bool { return statuses(t, pool, "mfail")["delivered/3"] == 40 })

	ep.mu.Lock()
	defer ep.mu.Unlock()
	if len(ep.posts) != 3 {
		t.Fatalf("%d POSTs, want 3 (two failures, one success)", len(ep.posts))
	}
	for i, p := range ep.posts {
		if len(p.events) != 40 || p.id != ep.posts[0].id {
			t.Errorf("POST %d: %d events, delivery id %s (first %s)", i+1, len(p.events), p.id, ep.posts[0].id)
		}
	}
	for _, id := range want {
		if ep.okEvents[id] != 1 {
			t.Errorf("event %s delivered %d times", id, ep.okEvents[id])
		}
	}
	if n := fixture.Count(t, pool, `SELECT count(*) FROM callback_attempts a JOIN callbacks c ON c.id = a.callback_id
		WHERE c.merchant_id = 'mfail' AND a.status_code = 500`); n != 80 {
		t.Errorf("%d failed attempts logged, want 80 (40 callbacks x 2)", n)
	}
}

// TestConcurrencyCap: an endpoint's callback_concurrency bounds its POSTs
// in flight across two workers, batched or not, and the cap is reached.
func TestConcurrencyCap(t *testing.T) {
	for _, c := range []struct {
		name               string
		batch, concurrency int
		callbacks          int
	}{
		{"single", 1, 3, 30},
		{"batched", 5, 3, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			pool, _ := fixture.Postgres(t)
			store := callbacks.NewStore(pool)
			ep := newEndpoint(t, "", 100*time.Millisecond, func(int) int { return http.StatusOK })
			ep.secret = setup(t, "mcap", pool, store, ep.srv.URL, c.batch, c.concurrency)
			enqueue(t, store, "mcap", "cap", c.callbacks)
			run(t, &callbacks.Worker{Store: store})
			run(t, &callbacks.Worker{Store: store})
			waitFor(t, 30*time.Second, "every callback delivered", func() bool { return ep.delivered() == c.callbacks })
			ep.mu.Lock()
			defer ep.mu.Unlock()
			if ep.maxFlight != c.concurrency {
				t.Errorf("%d POSTs in flight at most, want exactly the cap %d", ep.maxFlight, c.concurrency)
			}
			if want := (c.callbacks + c.batch - 1) / c.batch; len(ep.posts) != want {
				t.Errorf("%d POSTs, want %d", len(ep.posts), want)
			}
		})
	}
}
