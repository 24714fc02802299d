package ledgerstage_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/ledgerstage"
	"github.com/disburse/disburse/schemas/events"
)

const amount = 10_000

type harness struct {
	pool    *pgxpool.Pool
	brokers []string
	prefix  string
	topics  events.Topics
	admin   *kgo.Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	pool, _ := fixture.Postgres(t)
	h := &harness{pool: pool, brokers: testenv.Kafka(t), prefix: testenv.TopicPrefix(t)}
	h.topics = events.NewTopics(h.prefix)
	var err error
	if h.admin, err = processor.NewClient(h.brokers); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.admin.Close)
	if err := processor.EnsureTopics(context.Background(), h.admin, 6, h.topics.All()...); err != nil {
		t.Fatal(err)
	}
	fixture.Merchant(t, pool, "m1", 1_000_000_000_000, merchant.Settings{FeeFlat: 2500})
	fixture.Merchant(t, pool, "m2", 1_000_000_000_000, merchant.Settings{FeeFlat: 2500})
	return h
}

// instance is one running ledger stage.
type instance struct {
	cancel context.CancelFunc
	done   chan struct{}
	cl     *kgo.Client
}

func (h *harness) start(t *testing.T, group string) *instance {
	t.Helper()
	cl, err := processor.NewClient(h.brokers, processor.ConsumerOpts(group, h.topics.Requests)...)
	if err != nil {
		t.Fatal(err)
	}
	st := &ledgerstage.Stage{Ledger: ledger.NewStore(h.pool), Kafka: cl, Topics: h.topics,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan struct{}), cl: cl}
	go func() {
		defer close(in.done)
		if err := st.Run(ctx); err != nil {
			t.Errorf("stage: %v", err)
		}
	}()
	t.Cleanup(in.stop)
	return in
}

// stop finishes the batch in hand, commits and leaves the group.
func (in *instance) stop() {
	select {
	case <-in.done:
		return
	default:
	}
	in.cancel()
	<-in.done
	in.cl.Close()
}

func (h *harness) pending() int {
	var n int
	_ = h.pool.QueryRow(context.Background(), `SELECT count(*) FROM disbursements WHERE status = 'PENDING'`).Scan(&n)
	return n
}

func (h *harness) waitDone(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for h.pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d payouts still PENDING after %s", h.pending(), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkOnce asserts every payout was debited exactly once and the audit holds.
func (h *harness) checkOnce(t *testing.T, n int) {
	t.Helper()
	if got := fixture.Count(t, h.pool, `SELECT count(*) FROM journal_entries WHERE kind = 'debit'`); got != n {
		t.Errorf("%d debit entries, want %d", got, n)
	}
	if got := fixture.Count(t, h.pool, `SELECT count(*) FROM disbursements WHERE status = 'PROCESSING'`); got != n {
		t.Errorf("%d payouts PROCESSING, want %d", got, n)
	}
	for _, m := range []string{"m1", "m2"} {
		b, err := ledger.NewStore(h.pool).Balance(context.Background(), m, "sandbox", "IDR")
		if err != nil {
			t.Fatal(err)
		}
		want := int64(fixture.Count(t, h.pool, `SELECT count(*) FROM disbursements WHERE merchant_id = $1`, m)) * (amount + 2500)
		if b.Pending != want {
			t.Errorf("%s in flight %d, want %d", m, b.Pending, want)
		}
	}
	fixture.Audit(t, h.pool)
}

func TestRedeliveredRequestsDebitOnce(t *testing.T) {
	h := newHarness(t)
	ids := fixture.Pending(t, h.pool, "m1", "a", 500, amount)
	// Every request twice, as after a producer retry or a replayed batch.
	fixture.PublishRequests(t, h.admin, h.topics.Requests, "m1", ids)
	fixture.PublishRequests(t, h.admin, h.topics.Requests, "m1", ids)
	h.start(t, h.prefix+"ledger")
	h.waitDone(t, 60*time.Second)
	// Let the stage also finish the second copies before checking.
	waitCommitted(t, h, h.prefix+"ledger", 1000)
	h.checkOnce(t, 500)
}

func TestTwoInstancesAtOnceDebitOnce(t *testing.T) {
	h := newHarness(t)
	ids1 := fixture.Pending(t, h.pool, "m1", "a", 1000, amount)
	ids2 := fixture.Pending(t, h.pool, "m2", "a", 1000, amount)
	// Two instances that both believe they own every partition (a zombie
	// after a rebalance): two groups reading the same records.
	h.start(t, h.prefix+"ledger")
	h.start(t, h.prefix+"zombie")
	var wg sync.WaitGroup
	for m, batch := range map[string][]string{"m1": ids1, "m2": ids2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(batch); i += 100 {
				fixture.PublishRequests(t, h.admin, h.topics.Requests, m, batch[i:i+100])
			}
		}()
	}
	wg.Wait()
	h.waitDone(t, 60*time.Second)
	waitCommitted(t, h, h.prefix+"ledger", 2000)
	waitCommitted(t, h, h.prefix+"zombie", 2000)
	h.checkOnce(t, 2000)
}

func TestRebalanceWhileFlowing(t *testing.T) {
	h := newHarness(t)
	const n = 6000
	ids1 := fixture.Pending(t, h.pool, "m1", "a", n/2, amount)
	ids2 := fixture.Pending(t, h.pool, "m2", "a", n/2, amount)
	group := h.prefix + "ledger"
	h.start(t, group)

	publishing := make(chan struct{})
	go func() {
		defer close(publishing)
		for i := 0; i < n/2; i += 50 {
			fixture.PublishRequests(t, h.admin, h.topics.Requests, "m1", ids1[i:i+50])
			fixture.PublishRequests(t, h.admin, h.topics.Requests, "m2", ids2[i:i+50])
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitDebited(t, h, n/6)
	second := h.start(t, group) // joins: the group rebalances
	waitDebited(t, h, n/2)
	second.stop() // leaves: the group rebalances again
	<-publishing
	h.waitDone(t, 90*time.Second)
	waitCommitted(t, h, group, n)
	h.checkOnce(t, n)
}

func waitDebited(t *testing.T, h *harness, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for fixture.Count(t, h.pool, `SELECT count(*) FROM disbursements WHERE status <> 'PENDING'`) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d payouts debited in time", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCommitted waits until the group has committed n records of the requests topic.
func waitCommitted(t *testing.T, h *harness, group string, n int64) {
	t.Helper()
	adm := kadm.NewClient(h.admin)
	deadline := time.Now().Add(60 * time.Second)
	for {
		offs, err := adm.FetchOffsets(context.Background(), group)
		var sum int64
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == h.topics.Requests {
					sum += o.At
				}
			})
		}
		if sum >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed %d of %d records", group, sum, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
