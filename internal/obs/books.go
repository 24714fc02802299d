package obs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/audit"
)

var (
	booksViolations = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_books_violations",
		Help: "Violations the last periodic books check found (the checks of disburse audit: balanced entries, balances equal to postings, payouts and ledger agree, none stuck). Page when above 0.",
	})
	booksChecks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_books_checks_total",
		Help: "Periodic books checks run, by result (ok, violations, error).",
	}, []string{"result"})
	booksLastRun = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_books_check_last_run_timestamp_seconds",
		Help: "Unix time the last periodic books check finished (with or without violations); alert when it stops advancing.",
	})
)

// BooksCheck runs the audit package's checks every Every.
type BooksCheck struct {
	DB      *pgxpool.Pool
	Every   time.Duration
	Options audit.Options
	Log     *slog.Logger
}

// Run checks until ctx ends, the first time at once.
func (b *BooksCheck) Run(ctx context.Context) { repeat(ctx, b.Every, b.Check) }

// Check runs the checks once and sets the gauge. A failed run leaves the
// gauge as it was (the last known answer) and counts an error.
func (b *BooksCheck) Check(ctx context.Context) {
	start := time.Now()
	rep, err := audit.Run(ctx, b.DB, b.Options)
	if err != nil {
		if ctx.Err() == nil {
			booksChecks.WithLabelValues("error").Inc()
			b.Log.Error("books check failed to run", "err", err)
		}
		return
	}
	booksViolations.Set(float64(len(rep.Violations)))
	booksLastRun.SetToCurrentTime()
	if rep.OK() {
		booksChecks.WithLabelValues("ok").Inc()
		b.Log.Debug("books check passed", "checks", rep.Checks, "took", time.Since(start))
		return
	}
	booksChecks.WithLabelValues("violations").Inc()
	b.Log.Error("books check found violations", "violations", rep.Violations, "checks", rep.Checks, "took", time.Since(start))
}
