package dispatch

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

var (
	unresolvedGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_payouts_unresolved",
		Help: "Payouts whose transfer may have reached the bank and whose outcome has been unknown for longer than the reconciler's alert age. Alert when above 0.",
	})
	reconciled = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_reconciler_payouts_total",
		Help: "Payouts the reconciler acted on, by result (settled, redriven).",
	}, []string{"result"})
)

// ReconcileConfig tunes the reconciler: the loop in every dispatch worker
// that resolves payouts the lanes left with an unknown outcome. Bank
// returns are not its business: the statement follower (package
// processor/statement) reads them from the bank's own record.
type ReconcileConfig struct {
	// Every is the time between scans (default 5s), and the first gap
	// between two checks of one payout.
	Every time.Duration
	// After is how long after a transfer is sent the reconciler first
	// checks its payout, if it is still PROCESSING then (default: the
	// stage's UnknownWindow).
	After time.Duration
	// MaxGap is the longest gap between two checks of one payout: the gap
	// doubles from Every up to it (default 5m).
	MaxGap time.Duration
	// AlertAfter is the age from which an unresolved payout counts in
	// disburse_payouts_unresolved (default 10m).
	AlertAfter time.Duration
	// Batch is payouts taken at a time (default 200); a scan takes batches
	// until one comes back short, up to MaxBatches.
	Batch      int
	MaxBatches int
}

func (c *ReconcileConfig) defaults(unknownWindow time.Duration) {
	if c.Every <= 0 {
		c.Every = 5 * time.Second
	}
	if c.After <= 0 {
		c.After = unknownWindow
	}
	if c.MaxGap <= 0 {
		c.MaxGap = 5 * time.Minute
	}
	if c.AlertAfter <= 0 {
		c.AlertAfter = 10 * time.Minute
	}
	if c.Batch <= 0 {
		c.Batch = 200
	}
	if c.MaxBatches <= 0 {
		c.MaxBatches = 10
	}
}

func (s *Stage) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(s.Reconcile.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn("reconcile scan failed", "err", err)
			}
		}
	}
}

// ReconcileOnce runs one scan: it takes the payouts whose check is due (by
// due time, through an index; each taken payout's next check is pushed
// back as it is taken, so none can starve the others), asks the bank about
// those that may have been sent, then sets the unresolved gauge.
func (s *Stage) ReconcileOnce(ctx context.Context) error {
	s.defaults()
	for range s.Reconcile.MaxBatches {
		due, err := s.Payouts.TakeDue(ctx, s.Reconcile.Batch, s.Reconcile.Every, s.Reconcile.MaxGap)
		if err != nil {
			return err
		}
		for _, u := range due {
			if ctx.Err() != nil {
				return nil
			}
			if u.MaybeSent { // never sent: parked, the lanes' to send
				s.resolve(ctx, u.ID, u.BankCode)
			}
		}
		if len(due) < s.Reconcile.Batch {
			break
		}
	}
	n, err := s.Payouts.CountUnresolved(ctx, time.Now().Add(-s.Reconcile.AlertAfter))
	if err != nil {
		return err
	}
	unresolvedGauge.Set(float64(n))
	return nil
}

// resolve asks the bank about one payout with an unknown outcome, under
// its lease: a definite answer settles it; "no such reference" makes it
// safe to send, which the lanes do (it is re-driven through the retry
// topic); anything else leaves it for the next scan.
func (s *Stage) resolve(ctx context.Context, id, bank string) {
	owner := s.instance + "/reconcile/" + token()
	ok, _, err := s.Payouts.ClaimLease(ctx, id, owner, s.instance, s.LeaseTTL)
	if err != nil {
		if mayHaveCommitted(err) {
			s.dropped.add(owner, id)
		}
		return
	}
	if !ok {
		return
	}
	defer func() {
		if err := s.Payouts.ReleaseLease(context.WithoutCancel(ctx), id, owner); err != nil {
			s.dropped.add(owner, id)
		}
	}()
	d, err := s.Payouts.Load(ctx, id)
	if err != nil || d.Status != payout.Processing {
		return
	}
	res, err := s.Banks.For(d.Environment).Status(ctx, d.BankCode, d.ID)
	switch {
	case errors.Is(err, connectors.ErrUnknownReference):
		bankCalls.WithLabelValues(d.Environment, d.BankCode, payout.CallStatus, payout.OutcomeNoSuchRef).Inc()
		if err := s.Payouts.MarkNotReceived(ctx, d.ID); err != nil {
			s.Log.Warn("reconcile: mark not received", "disbursement_id", d.ID, "request_id", d.RequestID, "err", err)
			return
		}
		ev := events.Dispatch{DisbursementID: d.ID, MerchantID: d.MerchantID, Environment: d.Environment,
			BankCode: d.BankCode, NotBefore: time.Now().UTC(), Reason: "not_received"}
		if err := processor.Produce(ctx, s.Kafka, processor.JSONRecord(s.Topics.DispatchRetry, d.ID, ev)); err != nil {
			s.Log.Warn("reconcile: re-drive", "disbursement_id", d.ID, "request_id", d.RequestID, "err", err)
			return
		}
		reconciled.WithLabelValues("redriven").Inc()
		s.Log.Info("reconcile: the bank never received the transfer; re-driven", "disbursement_id", d.ID, "request_id", d.RequestID, "bank", d.BankCode)
	case errors.Is(err, connectors.ErrBankUnavailable):
		// No call made (no gateway, breaker open, ...): nothing learned.
	case err != nil, res.Status == connectors.StatusProcessing:
		bankCalls.WithLabelValues(d.Environment, d.BankCode, payout.CallStatus, payout.OutcomeUnknown).Inc()
	default:
		bankCalls.WithLabelValues(d.Environment, d.BankCode, payout.CallStatus, payout.OutcomeAnswered).Inc()
		if _, err := s.settle(ctx, d, res); err != nil {
			s.Log.Warn("reconcile: settle", "disbursement_id", d.ID, "request_id", d.RequestID, "err", err)
			return
		}
		reconciled.WithLabelValues("settled").Inc()
	}
}

// healthLoop writes this instance's view of every bank's breaker in each
// environment that has a gateway to bank_health, for GET /v1/banks.
func (s *Stage) healthLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		s.writeHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Stage) writeHealth(ctx context.Context) {
	for _, env := range s.Banks.Environments() {
		g := s.Banks.For(env)
		for _, b := range connectors.All() {
			if b.IsEWallet() {
				continue
			}
			st := g.State(b.Code)
			if _, err := s.Ledger.DB().Exec(ctx, `INSERT INTO bank_health (environment, bank, instance, breaker, updated_at)
				VALUES ($1, $2, $3, $4, now()) ON CONFLICT (environment, bank, instance) DO UPDATE SET breaker = excluded.breaker, updated_at = now()`,
				env, b.Code, s.instance, st.Breaker); err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("write bank health", "err", err)
				}
				return
			}
		}
	}
}
