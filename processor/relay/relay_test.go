package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/relay"
	"github.com/disburse/disburse/schemas/events"
)

// TestEveryTransitionPublishedInOrder moves payouts through every path,
// COMPLETED then REVERSED among them, while two relays run (one active, one
// standing by) and the active one is stopped halfway: the status topic must
// carry every change Postgres recorded, each payout's in version order.
func TestEveryTransitionPublishedInOrder(t *testing.T) {
	ctx := context.Background()
	pool, _ := fixture.Postgres(t)
	brokers := testenv.Kafka(t)
	topics := events.NewTopics(testenv.TopicPrefix(t))
	admin, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if err := processor.EnsureTopics(ctx, admin, 4, topics.All()...); err != nil {
		t.Fatal(err)
	}
	fixture.Merchant(t, pool, "m1", 1_000_000_000_000, merchant.Settings{FeeFlat: 2500})
	fixture.Merchant(t, pool, "m2", 1_000_000_000_000, merchant.Settings{FeeFlat: 2500})

	startRelay := func() (stop func()) {
		cl, err := processor.NewClient(brokers)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		st := &relay.Stage{Payouts: payout.NewStore(pool), Batches: batch.NewStore(pool), Kafka: cl, Topics: topics,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Limit: 97, StandbyPoll: 100 * time.Millisecond}
		done := make(chan struct{})
		go func() { defer close(done); _ = st.Run(rctx) }()
		var once sync.Once
		stop = func() { once.Do(func() { cancel(); <-done; cl.Close() }) }
		t.Cleanup(stop)
		return stop
	}
	first := startRelay()
	startRelay()

	led := ledger.NewStore(pool)
	const n = 300
	var ids []string
	for _, m := range []string{"m1", "m2"} {
		ids = append(ids, fixture.Pending(t, pool, m, "r", n, 10_000)...)
	}
	// The API's request id of each payout travels on its status records.
	if _, err := pool.Exec(ctx, `UPDATE disbursements SET request_id = 'req_' || id`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 100 {
		if _, _, err := led.ApplyDebits(ctx, ids[i:i+100]); err != nil {
			t.Fatal(err)
		}
		if i == len(ids)/2 {
			first() // the active relay goes away; the standby takes over
		}
	}
	for i, id := range ids {
		var err error
		switch i % 3 {
		case 0:
			_, _, err = led.Settle(ctx, id, ledger.Outcome{Completed: true})
		case 1:
			_, _, err = led.Settle(ctx, id, ledger.Outcome{FailureCode: payout.InvalidAccount})
		case 2:
			if _, _, err = led.Settle(ctx, id, ledger.Outcome{Completed: true}); err == nil {
				_, _, err = led.Return(ctx, id)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	want := map[string][]int{}
	rows, err := pool.Query(ctx, `SELECT disbursement_id, version FROM payout_events WHERE status <> 'PENDING' ORDER BY disbursement_id, version`)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for rows.Next() {
		var id string
		var v int
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		want[id] = append(want[id], v)
		total++
	}
	if total != len(ids)*2+len(ids)/3 {
		t.Fatalf("setup: %d events recorded, want %d", total, len(ids)*2+len(ids)/3)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.Status),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[string][]int{}
	seen := map[string]bool{}
	unique := 0
	deadline := time.Now().Add(60 * time.Second)
	for unique < total {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d changes published in 60s", unique, total)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := consumer.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var ev events.Status
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			if rid := processor.RequestIDOf(r); rid != "req_"+ev.DisbursementID {
				t.Errorf("%s v%d: request_id header %q, want %q", ev.DisbursementID, ev.Version, rid, "req_"+ev.DisbursementID)
			}
			k := fmt.Sprintf("%s/%d", ev.DisbursementID, ev.Version)
			if seen[k] {
				return // a replay after the hand-over: same version, harmless
			}
			seen[k] = true
			unique++
			got[ev.DisbursementID] = append(got[ev.DisbursementID], ev.Version)
		})
	}
	for id, vs := range want {
		if fmt.Sprint(got[id]) != fmt.Sprint(vs) {
			t.Errorf("%s: published versions %v, postgres has %v (in order)", id, got[id], vs)
		}
	}
}
