package obs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	moneyInFlight = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "disburse_money_in_flight",
		Help: "Money debited from merchants' balances and not yet paid out or returned (amount plus fee of every PROCESSING payout, in minor units), per environment, bank and currency; the sum of the ledger's in_flight accounts. Sampled from Postgres: every instance reports the same value, aggregate with max.",
	}, []string{"environment", "bank", "currency"})
	payoutsInFlight = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "disburse_payouts_in_flight",
		Help: "PROCESSING payouts (debited, not yet terminal) per environment and bank, sampled from Postgres with disburse_money_in_flight.",
	}, []string{"environment", "bank"})
	inFlightErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "disburse_money_in_flight_errors_total",
		Help: "Failed samples of the money in flight.",
	})
)

// InFlight samples the money in flight from Postgres every Every.
// Aggregates over every merchant, labelled only by environment, bank and
// currency (bounded), so no merchant's figures reach Prometheus.
type InFlight struct {
	DB    *pgxpool.Pool
	Every time.Duration // default 15s
	Log   *slog.Logger

	seen map[[3]string]bool // label sets ever reported, set to 0 when they empty
}

// Run samples until ctx ends, the first time at once.
func (f *InFlight) Run(ctx context.Context) { repeat(ctx, f.Every, f.Sample) }

// Sample sets the gauges once. A bank whose payouts all finished reads 0
// (not a vanished series, which a graph would show as a gap). A failed
// sample keeps the last values and counts an error.
func (f *InFlight) Sample(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// disbursements_open (status, updated_at) WHERE status IN
	// ('PENDING', 'PROCESSING') serves the filter.
	rows, err := f.DB.Query(qctx, `SELECT environment, bank_code, currency, count(*), sum(amount + fee)
		FROM disbursements WHERE status = 'PROCESSING' GROUP BY 1, 2, 3`)
	type sample struct {
		count  int64
		amount int64
	}
	now := map[[3]string]sample{}
	if err == nil {
		for rows.Next() {
			var k [3]string
			var s sample
			if err = rows.Scan(&k[0], &k[1], &k[2], &s.count, &s.amount); err != nil {
				break
			}
			now[k] = s
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		if ctx.Err() == nil { // not a shutdown
			inFlightErrors.Inc()
			f.Log.Warn("money in flight: cannot sample", "err", err)
		}
		return
	}
	if f.seen == nil {
		f.seen = map[[3]string]bool{}
	}
	for k := range f.seen {
		if _, ok := now[k]; !ok {
			now[k] = sample{}
		}
	}
	counts := map[[2]string]int64{}
	for k, s := range now {
		f.seen[k] = true
		moneyInFlight.WithLabelValues(k[0], k[1], k[2]).Set(float64(s.amount))
		counts[[2]string{k[0], k[1]}] += s.count
	}
	for k, n := range counts {
		payoutsInFlight.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
}
