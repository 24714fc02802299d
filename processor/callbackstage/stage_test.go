package callbackstage_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/callbacks/signature"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/callbackstage"
	"github.com/disburse/disburse/schemas/events"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type harness struct {
	pool     *pgxpool.Pool
	producer *kgo.Client
	topics   events.Topics
	prefix   string
	brokers  []string
	store    *callbacks.Store
	policy   callbacks.Policy
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	pool, _ := fixture.Postgres(t)
	brokers := testenv.Kafka(t)
	prefix := testenv.TopicPrefix(t)
	cl, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	topics := events.NewTopics(prefix)
	if err := processor.EnsureTopics(context.Background(), cl, 2, topics.All()...); err != nil {
		t.Fatal(err)
	}
	return &harness{pool: pool, producer: cl, topics: topics, prefix: prefix, brokers: brokers,
		store: callbacks.NewStore(pool), policy: callbacks.Policy{AllowInsecureSandbox: true}}
}

// start runs the callback stage and its worker until the test ends.
func (h *harness) start(t *testing.T, w *callbacks.Worker) {
	t.Helper()
	cl, err := processor.NewClient(h.brokers, processor.ConsumerOpts(h.prefix+"callbacks", h.topics.Status, h.topics.Batches)...)
	if err != nil {
		t.Fatal(err)
	}
	w.Store, w.Policy = h.store, h.policy
	if w.Log == nil {
		w.Log = quiet
	}
	st := &callbackstage.Stage{Store: h.store, Worker: w, Kafka: cl, Topics: h.topics, Log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stage: %v", err)
		}
		cl.Close()
	})
}

// merchant creates a sandbox merchant whose callbacks go to url.
func (h *harness) merchant(t *testing.T, id, url string) {
	t.Helper()
	fixture.Merchant(t, h.pool, id, 1_000_000_000, api.DefaultSettings)
	if err := h.store.SetURL(context.Background(), h.policy, id, payout.Sandbox, url); err != nil {
		t.Fatal(err)
	}
}

// settle inserts n payouts for the merchant, moves them to status in
// Postgres (as the pipeline would, with the feed) and publishes their
// status events, each twice (at-least-once delivery).
func (h *harness) settle(t *testing.T, merchantID, tag string, n int, status payout.Status) []string {
	t.Helper()
	ctx := context.Background()
	ids := fixture.Pending(t, h.pool, merchantID, tag, n, 10_000)
	var recs []*kgo.Record
	for _, d := range fixture.Move(t, h.pool, ids, status) {
		recs = append(recs, processor.StatusEvent(h.topics.Status, d), processor.StatusEvent(h.topics.Status, d))
	}
	if err := processor.Produce(ctx, h.producer, recs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

// receiver is a merchant's callback endpoint on loopback. It verifies every
// signature against the environment's secrets and answers with respond.
type receiver struct {
	t       *testing.T
	secret  func() string
	respond func(id string, attempt int, r *http.Request) int
	srv     *httptest.Server

	mu        sync.Mutex
	attempts  map[string]int
	delivered map[string]int
	bodies    map[string]map[string]any
	inFlight  int
	maxFlight int
	badSigs   int
}

func newReceiver(t *testing.T, secret func() string, respond func(id string, attempt int, r *http.Request) int) *receiver {
	rc := &receiver{t: t, secret: secret, respond: respond, attempts: map[string]int{}, delivered: map[string]int{}, bodies: map[string]map[string]any{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("X-Callback-Id")
	var parsed map[string]any
	_ = json.Unmarshal(body, &parsed)
	rc.mu.Lock()
	if err := signature.Verify(rc.secret(), r.Header.Get(signature.HeaderName), body, time.Minute, time.Now()); err != nil || parsed["id"] != id {
		rc.badSigs++
		rc.t.Errorf("callback %s: signature %v, body id %v", id, err, parsed["id"])
	}
	rc.attempts[id]++
	n := rc.attempts[id]
	rc.bodies[id] = parsed
	rc.inFlight++
	rc.maxFlight = max(rc.maxFlight, rc.inFlight)
	rc.mu.Unlock()
	code := rc.respond(id, n, r)
	rc.mu.Lock()
	rc.inFlight--
	if code/100 == 2 && r.Context().Err() == nil {
		rc.delivered[id]++
	}
	rc.mu.Unlock()
	w.WriteHeader(code)
}

func (rc *receiver) deliveredCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.delivered)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRetriedUntilDelivered: the receiver fails the first 3 attempts of
// every callback; each is then delivered exactly once, under the same id,
// and the log shows every attempt.
func TestRetriedUntilDelivered(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const failFirst = 3
	var rc *receiver
	rc = newReceiver(t, func() string { s, _ := h.store.Secret(ctx, "m1", payout.Sandbox); return s },
		func(_ string, attempt int, _ *http.Request) int {
			if attempt <= failFirst {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
	h.merchant(t, "m1", rc.srv.URL+"/cb")
	h.start(t, &callbacks.Worker{Backoff: retry.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}, PollInterval: 20 * time.Millisecond})

	completed := h.settle(t, "m1", "ok", 5, payout.Completed)
	failed := h.settle(t, "m1", "bad", 3, payout.Failed)
	// A PROCESSING event is not announced.
	h.settle(t, "m1", "mid", 2, payout.Processing)
	// A completed batch, announced twice.
	batch := processor.JSONRecord(h.topics.Batches, "m1", events.BatchCompleted{BatchID: "bat_1", MerchantID: "m1",
		Environment: payout.Sandbox, ReferenceID: "payroll-may", Status: "COMPLETED", TotalCount: 8, TotalAmount: 80_000,
		Currency: "IDR", Counts: map[string]events.BatchTotal{"COMPLETED": {Count: 5, Amount: 50_000}, "FAILED": {Count: 3, Amount: 30_000}},
		CompletedAt: time.Now()})
	if err := processor.Produce(ctx, h.producer, batch, batch); err != nil {
		t.Fatal(err)
	}
	all := append(append([]string{"bat_1"}, completed...), failed...)
	waitFor(t, 30*time.Second, "every callback delivered", func() bool { return rc.deliveredCount() == len(all) })
	time.Sleep(200 * time.Millisecond) // nothing more may come

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.attempts) != len(all) {
		t.Fatalf("receiver saw %d callback ids, want %d (one per terminal change)", len(rc.attempts), len(all))
	}
	types := map[string]int{}
	for id, n := range rc.attempts {
		if n != failFirst+1 || rc.delivered[id] != 1 {
			t.Errorf("callback %s: %d attempts, %d successes; want %d and 1", id, n, rc.delivered[id], failFirst+1)
		}
		body := rc.bodies[id]
		types[body["type"].(string)]++
		data := body["data"].(map[string]any)
		switch body["type"] {
		case callbacks.TypeBatchCompleted:
			if data["id"] != "bat_1" || data["total_count"].(float64) != 8 || data["counts"] == nil {
				t.Errorf("batch callback %s body %v", id, body)
			}
		default:
			// PENDING v1, PROCESSING v2, terminal v3 (fixture.Move).
			if data["version"].(float64) != 3 || body["created_at"] == nil || data["reference_id"] == "" {
				t.Errorf("callback %s body %v", id, body)
			}
		}
		c, err := h.store.Get(ctx, "m1", payout.Sandbox, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != callbacks.Delivered || len(c.Attempts) != failFirst+1 || c.DeliveredAt == nil {
			t.Fatalf("log of %s: %+v", id, c)
		}
		for i, a := range c.Attempts { // newest first
			want := 503
			if i == 0 {
				want = 200
			}
			if a.ResponseCode == nil || *a.ResponseCode != want || a.URL != rc.srv.URL+"/cb" {
				t.Errorf("log of %s attempt %d: %+v, want code %d", id, len(c.Attempts)-i, a, want)
			}
		}
	}
	if types[callbacks.TypeCompleted] != 5 || types[callbacks.TypeFailed] != 3 || types[callbacks.TypeBatchCompleted] != 1 {
		t.Errorf("callback types %v", types)
	}
	if n := fixture.Count(t, h.pool, `SELECT count(*) FROM callbacks`); n != len(all) {
		t.Errorf("%d callbacks recorded, want %d (duplicate events must not add any)", n, len(all))
	}
}

// TestHangingEndpointDoesNotDelayOthers: merchant A's endpoint hangs 30 s
// on every callback; the attempt timeout is 3 s here (10 s in production).
// Merchant B's callbacks, sent while A's attempts hang, must arrive in their
// normal latency, far below A's timeout.
func TestHangingEndpointDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	release := make(chan struct{})
	hangA := newReceiver(t, func() string { s, _ := h.store.Secret(ctx, "ma", payout.Sandbox); return s },
		func(_ string, _ int, r *http.Request) int {
			select {
			case <-time.After(30 * time.Second):
			case <-r.Context().Done():
			case <-release:
			}
			return http.StatusOK
		})
	defer close(release)
	b := newReceiver(t, func() string { s, _ := h.store.Secret(ctx, "mb", payout.Sandbox); return s },
		func(string, int, *http.Request) int { return http.StatusNoContent })
	h.merchant(t, "ma", hangA.srv.URL)
	h.merchant(t, "mb", b.srv.URL)
	const perEndpoint, concurrency = 2, 8
	h.start(t, &callbacks.Worker{MaxConcurrent: concurrency, PerEndpoint: perEndpoint, AttemptTimeout: 3 * time.Second,
		Backoff: retry.Backoff{Base: time.Second, Max: time.Second}, PollInterval: 50 * time.Millisecond})

	// Baseline: B alone.
	start := time.Now()
	h.settle(t, "mb", "base", 10, payout.Completed)
	waitFor(t, 10*time.Second, "B's baseline callbacks", func() bool { return b.deliveredCount() == 10 })
	baseline := time.Since(start)

	// A's 20 callbacks (more than the process's 8 slots) hang.
	h.settle(t, "ma", "hang", 20, payout.Completed)
	waitFor(t, 5*time.Second, "A's attempts to hang", func() bool {
		hangA.mu.Lock()
		defer hangA.mu.Unlock()
		return hangA.inFlight == perEndpoint
	})
	start = time.Now()
	h.settle(t, "mb", "during", 10, payout.Completed)
	waitFor(t, 10*time.Second, "B's callbacks while A hangs", func() bool { return b.deliveredCount() == 20 })
	during := time.Since(start)
	t.Logf("B's 10 callbacks: %s alone, %s while A hangs (A's attempt timeout 3s)", baseline.Round(time.Millisecond), during.Round(time.Millisecond))
	if during > 1500*time.Millisecond {
		t.Errorf("B's callbacks took %s while A hung (alone: %s)", during, baseline)
	}
	hangA.mu.Lock()
	defer hangA.mu.Unlock()
	if hangA.maxFlight > perEndpoint {
		t.Errorf("A had %d attempts in flight at once, cap %d", hangA.maxFlight, perEndpoint)
	}
	if len(hangA.delivered) != 0 {
		t.Errorf("a hanging endpoint counted as delivered: %v", hangA.delivered)
	}
}

// TestDialTimeAddressCheck: a production callback URL that passed the check
// when set but now points at loopback (DNS rebinding, simulated by writing
// the URL directly) is refused when connecting; nothing reaches the host.
func TestDialTimeAddressCheck(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	reached := make(chan struct{}, 10)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached <- struct{}{} }))
	defer srv.Close()
	fixture.Merchant(t, h.pool, "mp", 1_000_000_000, api.DefaultSettings)
	// Production environment of mp, its callback_url written past the check.
	if _, err := h.pool.Exec(ctx, `INSERT INTO merchant_environments (merchant_id, environment, callback_url) VALUES ('mp', 'production', $1)`, srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := h.store.SetURL(ctx, h.policy, "mp", payout.Production, srv.URL); err == nil {
		t.Fatal("SetURL accepted a loopback production URL")
	}
	n, err := h.store.Enqueue(ctx, []callbacks.New{{ID: "cb_rebind", MerchantID: "mp", Environment: payout.Production,
		Type: callbacks.TypeCompleted, SubjectID: "dsb_x", Body: []byte(`{}`), EventAt: time.Now()}})
	if err != nil || n != 1 {
		t.Fatalf("enqueue: %d %v", n, err)
	}
	h.start(t, &callbacks.Worker{Backoff: retry.Backoff{Base: time.Hour, Max: time.Hour}, PollInterval: 20 * time.Millisecond})
	var c callbacks.Callback
	waitFor(t, 10*time.Second, "the attempt to be logged", func() bool {
		c, err = h.store.Get(ctx, "mp", payout.Production, "cb_rebind")
		return err == nil && len(c.Attempts) == 1
	})
	if c.Status != callbacks.Pending || c.Attempts[0].ResponseCode != nil || c.Attempts[0].Error == "" {
		t.Fatalf("callback after a refused dial: %+v", c)
	}
	t.Logf("logged error: %s", c.Attempts[0].Error)
	select {
	case <-reached:
		t.Fatal("the loopback host was reached")
	default:
	}
}
