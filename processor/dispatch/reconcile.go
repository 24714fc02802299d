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
		Help: "Payouts the reconciler acted on, by result (settled, redriven, returned).",
	}, []string{"result"})
)

// ReconcileConfig tunes the reconciler: the loop in every dispatch worker
// that resolves payouts the lanes left with an unknown outcome, and notices
// bank returns of completed payouts.
type ReconcileConfig struct {
	// Every is the time between scans (default 5s).
	Every time.Duration
	// After is how old a payout's first possibly-sent transfer must be for
	// the reconciler to take it (default: the stage's UnknownWindow).
	After time.Duration
	// AlertAfter is the age from which an unresolved payout counts in
	// disburse_payouts_unresolved (default 10m).
	AlertAfter time.Duration
	// ReturnWatch is how long after completion a payout is checked for a
	// bank return (default 10m; negative: never).
	ReturnWatch time.Duration
	// Batch bounds payouts per scan and kind (default 200).
	Batch int
}

func (c *ReconcileConfig) defaults(unknownWindow time.Duration) {
	if c.Every <= 0 {
		c.Every = 5 * time.Second
	}
	if c.After <= 0 {
		c.After = unknownWindow
	}
	if c.AlertAfter <= 0 {
		c.AlertAfter = 10 * time.Minute
	}
	if c.ReturnWatch == 0 {
		c.ReturnWatch = 10 * time.Minute
	}
	if c.Batch <= 0 {
		c.Batch = 200
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

// ReconcileOnce runs one scan: unknown outcomes, then returns, then the
// unresolved gauge.
func (s *Stage) ReconcileOnce(ctx context.Context) error {
	s.defaults()
	now := time.Now()
	unknown, err := s.Payouts.ListUnresolved(ctx, now.Add(-s.Reconcile.After), s.Reconcile.Batch)
	if err != nil {
		return err
	}
	for _, u := range unknown {
		if ctx.Err() != nil {
			return nil
		}
		s.resolve(ctx, u)
	}
	if s.Reconcile.ReturnWatch > 0 {
		done, err := s.Payouts.CompletedSince(ctx, now.Add(-s.Reconcile.ReturnWatch), s.Reconcile.Batch)
		if err != nil {
			return err
		}
		s.returnsMu.Lock()
		if s.returnChecks == nil {
			s.returnChecks = map[string]returnCheck{}
		}
		for id, c := range s.returnChecks {
			if now.After(c.expires) {
				delete(s.returnChecks, id)
			}
		}
		var due []payout.Disbursement
		for _, d := range done {
			c, ok := s.returnChecks[d.ID]
			if ok && now.Before(c.next) {
				continue
			}
			// Each payout is asked about at growing intervals: Every, 2x, 4x...
			c.gap = max(s.Reconcile.Every, 2*c.gap)
			c.next = now.Add(c.gap)
			if d.CompletedAt != nil {
				c.expires = d.CompletedAt.Add(s.Reconcile.ReturnWatch)
			}
			s.returnChecks[d.ID] = c
			due = append(due, d)
		}
		s.returnsMu.Unlock()
		for _, d := range due {
			if ctx.Err() != nil {
				return nil
			}
			s.checkReturn(ctx, d)
		}
	}
	n, err := s.Payouts.CountUnresolved(ctx, time.Now().Add(-s.Reconcile.AlertAfter))
	if err != nil {
		return err
	}
	unresolvedGauge.Set(float64(n))
	return nil
}

// returnCheck spaces the return checks of one completed payout.
type returnCheck struct {
	next, expires time.Time
	gap           time.Duration
}

// resolve asks the bank about one payout with an unknown outcome, under
// its lease: a definite answer settles it; "no such reference" makes it
// safe to send, which the lanes do (it is re-driven through the retry
// topic); anything else leaves it for the next scan.
func (s *Stage) resolve(ctx context.Context, u payout.Unresolved) {
	owner := s.instance + "/reconcile/" + token()
	ok, _, err := s.Payouts.ClaimLease(ctx, u.ID, owner, s.instance, s.LeaseTTL)
	if err != nil || !ok {
		return
	}
	defer func() { _ = s.Payouts.ReleaseLease(context.WithoutCancel(ctx), u.ID, owner) }()
	d, err := s.Payouts.Load(ctx, u.ID)
	if err != nil || d.Status != payout.Processing {
		return
	}
	res, err := s.Bank.Status(ctx, d.BankCode, d.ID)
	switch {
	case errors.Is(err, connectors.ErrUnknownReference):
		bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeNoSuchRef).Inc()
		if err := s.Payouts.MarkNotReceived(ctx, d.ID); err != nil {
			s.Log.Warn("reconcile: mark not received", "disbursement_id", d.ID, "err", err)
			return
		}
		ev := events.Dispatch{DisbursementID: d.ID, MerchantID: d.MerchantID, Environment: d.Environment,
			BankCode: d.BankCode, NotBefore: time.Now().UTC(), Reason: "not_received"}
		if err := processor.Produce(ctx, s.Kafka, processor.JSONRecord(s.Topics.DispatchRetry, d.ID, ev)); err != nil {
			s.Log.Warn("reconcile: re-drive", "disbursement_id", d.ID, "err", err)
			return
		}
		reconciled.WithLabelValues("redriven").Inc()
		s.Log.Info("reconcile: the bank never received the transfer; re-driven", "disbursement_id", d.ID, "bank", d.BankCode)
	case err != nil, res.Status == connectors.StatusProcessing:
		bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeUnknown).Inc()
	default:
		bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeAnswered).Inc()
		if _, err := s.settle(ctx, d, res); err != nil {
			s.Log.Warn("reconcile: settle", "disbursement_id", d.ID, "err", err)
			return
		}
		reconciled.WithLabelValues("settled").Inc()
	}
}

// checkReturn asks the bank whether a completed payout was returned and, if
// so, reverses it (ledger.Return acts once: only from COMPLETED).
func (s *Stage) checkReturn(ctx context.Context, d payout.Disbursement) {
	res, err := s.Bank.Status(ctx, d.BankCode, d.ID)
	if err != nil || res.Status != connectors.StatusReturned {
		return
	}
	d, changed, err := s.Ledger.Return(ctx, d.ID)
	if err != nil {
		s.Log.Warn("reconcile: return", "disbursement_id", d.ID, "err", err)
		return
	}
	if !changed {
		return
	}
	reconciled.WithLabelValues("returned").Inc()
	s.Log.Info("payout returned by the bank; reversed", "disbursement_id", d.ID, "merchant_id", d.MerchantID, "bank", d.BankCode)
}

// healthLoop writes this instance's view of every bank's breaker to
// bank_health, for GET /v1/banks.
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
	for _, b := range connectors.All() {
		if b.IsEWallet() {
			continue
		}
		st := s.Bank.State(b.Code)
		if _, err := s.Ledger.DB().Exec(ctx, `INSERT INTO bank_health (bank, instance, breaker, updated_at)
			VALUES ($1, $2, $3, now()) ON CONFLICT (bank, instance) DO UPDATE SET breaker = excluded.breaker, updated_at = now()`,
			b.Code, s.instance, st.Breaker); err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("write bank health", "err", err)
			}
			return
		}
	}
}
