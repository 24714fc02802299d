package sink_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/audit"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/sink"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.CloseReports()
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// crashing stores batches until the n-th, which it stores and then fails
// like a process killed between the insert and the offset commit; every
// later call fails without storing.
type crashing struct {
	sink.Feed
	mu      sync.Mutex
	left    int
	crashed chan struct{}
}

var errKilled = errors.New("killed")

func (c *crashing) Write(ctx context.Context, recs []*kgo.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == 0 {
		return errKilled
	}
	if err := c.Feed.Write(ctx, recs); err != nil {
		return err
	}
	if c.left--; c.left == 0 {
		close(c.crashed)
		return errKilled
	}
	return nil
}

// Payouts of every outcome stream through the sink, which is killed after
// storing a batch it never committed; a second instance takes over, and
// every event is delivered a second time. The report totals still equal
// the ledger's, checked by the reconciliation audit.
func TestSinkKilledAndRedeliveredMatchesLedger(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	st := fixture.Reports(t)
	brokers, prefix := testenv.Kafka(t), testenv.TopicPrefix(t)
	topics := events.NewTopics(prefix)
	ctx := context.Background()
	prod, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := processor.EnsureTopics(ctx, prod, 3, topics.Status); err != nil {
		t.Fatal(err)
	}
	const amount, fee = 10_000, 2_500
	fixture.Merchant(t, pool, "m1", 1_000_000_000, merchant.Settings{FeeFlat: fee})
	fixture.Merchant(t, pool, "m2", 3*(amount+fee), merchant.Settings{FeeFlat: fee}) // room for 3 of 6

	// Every outcome, each change published as the stages would.
	lg := ledger.NewStore(pool)
	var recs []*kgo.Record
	publish := func(d payout.Disbursement) { recs = append(recs, processor.StatusEvent(topics.Status, d)) }
	ids := append(fixture.Pending(t, pool, "m1", "a", 30, amount), fixture.Pending(t, pool, "m2", "b", 6, amount)...)
	debited, _, err := lg.ApplyDebits(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[payout.Status]int{}
	for i, d := range debited {
		publish(d) // PROCESSING, or FAILED INSUFFICIENT_BALANCE
		if d.Status != payout.Processing {
			outcomes[d.Status]++
			continue
		}
		var o *ledger.Outcome
		switch i % 5 {
		case 0, 3:
			o = &ledger.Outcome{Completed: true}
		case 1:
			o = &ledger.Outcome{FailureCode: "INVALID_ACCOUNT"}
		case 2:
			o = &ledger.Outcome{FailureCode: "BANK_REJECTED"}
		}
		if o != nil {
			if d, _, err = lg.Settle(ctx, d.ID, *o); err != nil {
				t.Fatal(err)
			}
			publish(d)
		}
		if i%5 == 3 {
			if d, _, err = lg.Return(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			publish(d)
		}
		outcomes[d.Status]++
	}
	for _, s := range []payout.Status{payout.Processing, payout.Completed, payout.Failed, payout.Reversed} {
		if outcomes[s] == 0 {
			t.Fatalf("no payout ended %s: %v", s, outcomes)
		}
	}

	start := func(feed sink.Feed) (*kgo.Client, context.CancelFunc, chan struct{}) {
		cl, err := processor.NewClient(brokers, processor.ConsumerOpts(prefix+"sink", topics.Status)...)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		stage := &sink.Stage{Feeds: []sink.Feed{feed}, Kafka: cl, Log: quiet, MaxRows: 8, MaxWait: 200 * time.Millisecond}
		go func() { defer close(done); _ = stage.Run(runCtx) }()
		return cl, cancel, done
	}
	status := &sink.StatusFeed{Name: topics.Status, Reports: st, Log: quiet}

	half := len(recs) / 2
	if err := processor.Produce(ctx, prod, recs[:half]...); err != nil {
		t.Fatal(err)
	}
	first := &crashing{Feed: status, left: 2, crashed: make(chan struct{})}
	cl, cancel, done := start(first)
	select {
	case <-first.crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first sink stored no two batches in 30 s")
	}
	cancel()
	<-done
	cl.CloseAllowingRebalance()

	// The rest, then everything again: a replaying producer.
	again := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		again = append(again, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value})
	}
	if err := processor.Produce(ctx, prod, append(recs[half:], again...)...); err != nil {
		t.Fatal(err)
	}
	cl, cancel, done = start(status)
	defer func() { cancel(); <-done; cl.CloseAllowingRebalance() }()

	var rep audit.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rep, err = audit.Reports(ctx, pool, st); err != nil {
			t.Fatal(err)
		}
		if rep.OK() || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !rep.OK() {
		t.Fatalf("reports do not match the ledger after 30 s:\n%s", rep)
	}
	fixture.Audit(t, pool)

	// The same totals through the merchant's report.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	rows, err := st.Summary(ctx, reports.Scope{MerchantID: "m2", Environment: payout.Sandbox},
		reports.Period{From: today.AddDate(0, 0, -1), To: today.AddDate(0, 0, 1)}, reports.ByStatus)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[r.Status] += r.Count
	}
	if got["FAILED"] < 3 {
		t.Errorf("m2's summary %v: want at least the 3 INSUFFICIENT_BALANCE failures", got)
	}
}
