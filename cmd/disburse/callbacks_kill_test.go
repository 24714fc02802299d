package main

import (
	"context"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/callbacks/signature"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// TestCallbackWorkerKilledWithDeliveriesPending kills the callbacks worker
// process with SIGKILL while every callback is pending (the receiver
// refuses some and holds others mid-request), publishes more status events
// while it is down, restarts it, and checks that every callback is then
// delivered exactly once with a valid signature.
func TestCallbackWorkerKilledWithDeliveriesPending(t *testing.T) {
	pgURL := testenv.Postgres(t)
	brokers := testenv.Kafka(t)
	prefix := testenv.TopicPrefix(t)
	bin := buildBinary(t)
	if out, err := exec.Command(bin, "migrate", "--postgres-url", pgURL).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fixture.Merchant(t, pool, "m1", 1_000_000_000, api.DefaultSettings)
	store := callbacks.NewStore(pool)
	secret, err := store.Secret(ctx, "m1", payout.Sandbox)
	if err != nil {
		t.Fatal(err)
	}

	var accepting atomic.Bool
	var hanging atomic.Int32
	var mu sync.Mutex
	delivered := map[string]int{}
	badSig := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("X-Callback-Id")
		if err := signature.Verify(secret, r.Header.Get(signature.HeaderName), body, time.Minute, time.Now()); err != nil {
			mu.Lock()
			badSig++
			mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !accepting.Load() {
			h := fnv.New32a()
			h.Write([]byte(id))
			if h.Sum32()%3 == 0 { // held mid-request until the worker dies
				hanging.Add(1)
				<-r.Context().Done()
				hanging.Add(-1)
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		delivered[id]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer recv.Close()
	if err := store.SetURL(ctx, callbacks.Policy{AllowInsecureSandbox: true}, "m1", payout.Sandbox, recv.URL+"/cb"); err != nil {
		t.Fatal(err)
	}

	topics := events.NewTopics(prefix)
	admin, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := processor.EnsureTopics(ctx, admin, 4, topics.All()...); err != nil {
		t.Fatal(err)
	}
	publishCompleted(t, pool, admin, topics, "a", 30)

	args := []string{"worker", "--stages", "callbacks", "--postgres-url", pgURL, "--kafka-brokers", strings.Join(brokers, ","),
		"--topic-prefix", prefix, "--partitions", "4", "--callbacks-allow-insecure-sandbox",
		"--callback-attempt-timeout", "2s", "--callback-retry-base", "100ms", "--callback-retry-max", "300ms"}
	first := startProc(t, bin, "callbacks-1", append(args, "--metrics-addr", freeAddr(t))...)
	waitUntil(t, 60*time.Second, "30 callbacks recorded, attempts failing and some held", func() bool {
		return fixture.Count(t, pool, `SELECT count(*) FROM callbacks`) == 30 &&
			fixture.Count(t, pool, `SELECT count(*) FROM callback_attempts`) >= 30 && hanging.Load() > 0
	})
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	pending := fixture.Count(t, pool, `SELECT count(*) FROM callbacks WHERE status = 'pending'`)
	leased := fixture.Count(t, pool, `SELECT count(*) FROM callbacks WHERE leased_until > now()`)
	t.Logf("killed with %d callbacks pending, %d of them leased by the dead process", pending, leased)
	if pending != 30 || leased == 0 {
		t.Fatalf("want all 30 pending and some leased at the kill, got %d and %d", pending, leased)
	}

	publishCompleted(t, pool, admin, topics, "b", 20) // while no worker runs
	accepting.Store(true)
	start := time.Now()
	startProc(t, bin, "callbacks-2", append(args, "--metrics-addr", freeAddr(t))...)
	waitUntil(t, 90*time.Second, "every callback delivered after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == 50
	})
	t.Logf("all 50 delivered %s after the restart", time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("callback %s delivered %d times", id, n)
		}
	}
	if badSig != 0 {
		t.Errorf("%d requests with a bad signature", badSig)
	}
	if n := fixture.Count(t, pool, `SELECT count(*) FROM callbacks WHERE status = 'delivered'`); n != 50 {
		t.Errorf("%d callbacks marked delivered, want 50", n)
	}
}

// publishCompleted makes n COMPLETED payouts (with their feed rows) and
// publishes their status events.
func publishCompleted(t *testing.T, pool *pgxpool.Pool, cl *kgo.Client, topics events.Topics, tag string, n int) {
	t.Helper()
	ctx := context.Background()
	ids := fixture.Pending(t, pool, "m1", tag, n, 10_000)
	moved := fixture.Move(t, pool, ids, payout.Completed)
	var recs []*kgo.Record
	for _, d := range moved {
		recs = append(recs, processor.StatusEvent(topics.Status, d))
	}
	if err := processor.Produce(ctx, cl, recs...); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
