package obs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/obs"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/processor"
)

func gaugeValue(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// TestBooksCheck: a clean ledger gives 0 violations; a balance edited
// behind the ledger's back gives at least one; a run that cannot reach the
// database keeps the last answer and counts an error.
func TestBooksCheck(t *testing.T) {
	ctx := context.Background()
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{})
	fixture.Pending(t, pool, "m1", "books", 2, 10_000)
	bc := &obs.BooksCheck{DB: pool, Every: time.Hour, Log: slog.Default()}
	bc.Check(ctx)
	if v, _ := gaugeValue(t, "disburse_books_violations", nil); v != 0 {
		t.Fatalf("clean books: disburse_books_violations = %v", v)
	}
	if _, err := pool.Exec(ctx, `UPDATE accounts SET balance = balance + 1 WHERE kind = 'available'`); err != nil {
		t.Fatal(err)
	}
	bc.Check(ctx)
	v, _ := gaugeValue(t, "disburse_books_violations", nil)
	if v < 1 {
		t.Fatalf("edited balance: disburse_books_violations = %v, want >= 1", v)
	}
	errorsBefore, _ := gaugeValue(t, "disburse_books_checks_total", map[string]string{"result": "error"})
	pool.Close()
	bc.Check(ctx)
	if after, _ := gaugeValue(t, "disburse_books_violations", nil); after != v {
		t.Errorf("a failed run changed the gauge from %v to %v", v, after)
	}
	if errorsAfter, _ := gaugeValue(t, "disburse_books_checks_total", map[string]string{"result": "error"}); errorsAfter != errorsBefore+1 {
		t.Errorf("failed run not counted: %v -> %v", errorsBefore, errorsAfter)
	}
}

// TestPoolCollector exports the pool's statistics.
func TestPoolCollector(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	reg := prometheus.NewRegistry()
	if !obs.RegisterPool(reg, pool) {
		t.Fatal("first pool not registered")
	}
	if obs.RegisterPool(reg, pool) {
		t.Fatal("second pool registered on the same registry")
	}
	if _, err := pool.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 8 {
		t.Fatalf("gathered %d families (%v), want 8", len(families), err)
	}
	for _, f := range families {
		switch f.GetName() {
		case "disburse_pg_pool_max_connections":
			if got := f.GetMetric()[0].GetGauge().GetValue(); got != float64(pool.Config().MaxConns) {
				t.Errorf("max connections %v, pool says %d", got, pool.Config().MaxConns)
			}
		case "disburse_pg_pool_acquires_total":
			if f.GetMetric()[0].GetCounter().GetValue() < 1 {
				t.Error("acquires_total < 1 after a query")
			}
		}
	}
}

// TestLagMonitor: 5 records, the group commits 2: lag 3 on the partition.
func TestLagMonitor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testenv.Kafka(t)
	topic := testenv.TopicPrefix(t) + "lag"
	group := topic + ".group"
	cl, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := processor.EnsureTopics(ctx, cl, 1, topic); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for range 5 {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("x")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons, err := processor.NewClient(brokers, processor.ConsumerOpts(group, topic)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []*kgo.Record
	for len(got) < 2 {
		fs := cons.PollRecords(ctx, 2-len(got))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fs.Records()...)
		cons.AllowRebalance()
	}
	if err := cons.CommitRecords(ctx, got[:2]...); err != nil {
		t.Fatal(err)
	}
	obs.NewLagMonitor(cl, slog.Default(), group).Measure(ctx)
	v, ok := gaugeValue(t, "disburse_consumer_group_lag", map[string]string{"group": group, "topic": topic, "partition": "0"})
	if !ok || v != 3 {
		t.Fatalf("disburse_consumer_group_lag = %v (present %v), want 3", v, ok)
	}
}

// TestInFlight: the money in flight is the amount plus fee of the
// PROCESSING payouts per environment and bank, equal to the ledger's
// in_flight accounts; PENDING and terminal payouts are not in it; a bank
// whose payouts all finished reads 0; a failed sample keeps the values
// and counts an error.
func TestInFlight(t *testing.T) {
	ctx := context.Background()
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 10_000_000, merchant.Settings{FeeFlat: 100})
	fixture.Merchant(t, pool, "m2", 10_000_000, merchant.Settings{FeeFlat: 100})
	a := fixture.Pending(t, pool, "m1", "a", 3, 10_000) // bank bca
	b := fixture.Pending(t, pool, "m2", "b", 2, 25_000)
	fixture.Pending(t, pool, "m1", "waiting", 4, 1_000) // PENDING: not debited
	if _, err := pool.Exec(ctx, `UPDATE disbursements SET bank_code = 'bni' WHERE id = ANY($1)`, b); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.NewStore(pool).ApplyDebits(ctx, append(append([]string{}, a...), b...)); err != nil {
		t.Fatal(err)
	}
	f := &obs.InFlight{DB: pool, Log: slog.Default()}
	f.Sample(ctx)
	check := func(bank string, wantAmount, wantCount float64) {
		t.Helper()
		labels := map[string]string{"environment": "sandbox", "bank": bank}
		if v, ok := gaugeValue(t, "disburse_money_in_flight", map[string]string{"environment": "sandbox", "bank": bank, "currency": "IDR"}); !ok || v != wantAmount {
			t.Errorf("disburse_money_in_flight{bank=%s} = %v (%v), want %v", bank, v, ok, wantAmount)
		}
		if v, ok := gaugeValue(t, "disburse_payouts_in_flight", labels); !ok || v != wantCount {
			t.Errorf("disburse_payouts_in_flight{bank=%s} = %v (%v), want %v", bank, v, ok, wantCount)
		}
	}
	fees := int64(fixture.Count(t, pool, `SELECT coalesce(sum(fee), 0)::int FROM disbursements WHERE id = ANY($1)`, a))
	check("bca", float64(3*10_000+fees), 3)
	check("bni", float64(2*25_000+int64(fixture.Count(t, pool, `SELECT coalesce(sum(fee), 0)::int FROM disbursements WHERE id = ANY($1)`, b))), 2)
	ledgerInFlight := fixture.Count(t, pool, `SELECT sum(balance)::int FROM accounts WHERE kind = 'in_flight' AND environment = 'sandbox'`)
	bca, _ := gaugeValue(t, "disburse_money_in_flight", map[string]string{"environment": "sandbox", "bank": "bca", "currency": "IDR"})
	bni, _ := gaugeValue(t, "disburse_money_in_flight", map[string]string{"environment": "sandbox", "bank": "bni", "currency": "IDR"})
	if int(bca+bni) != ledgerInFlight {
		t.Errorf("money in flight %v + %v, ledger in_flight accounts %d", bca, bni, ledgerInFlight)
	}

	// The status alone is what the sample reads.
	if _, err := pool.Exec(ctx, `UPDATE disbursements SET status = 'FAILED' WHERE id = ANY($1)`, b); err != nil {
		t.Fatal(err)
	}
	f.Sample(ctx)
	check("bni", 0, 0)
	check("bca", float64(3*10_000+fees), 3)

	errorsBefore, _ := gaugeValue(t, "disburse_money_in_flight_errors_total", nil)
	pool.Close()
	f.Sample(ctx)
	check("bca", float64(3*10_000+fees), 3)
	if after, _ := gaugeValue(t, "disburse_money_in_flight_errors_total", nil); after != errorsBefore+1 {
		t.Errorf("failed sample not counted: %v -> %v", errorsBefore, after)
	}
}
