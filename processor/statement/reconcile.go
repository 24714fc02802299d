package statement

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
)

var differencesGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "disburse_reconcile_differences",
	Help: "Differences between an environment's statement of a bank and the ledger found by the last scheduled reconciliation (today and yesterday, Asia/Jakarta). Alert when above 0.",
}, []string{"environment", "bank"})

// Kinds of difference.
const (
	// PaidNotCompleted: the bank paid; here the payout is not COMPLETED
	// (or REVERSED), or there is no such payout.
	PaidNotCompleted = "paid_not_completed"
	// CompletedUnknownToBank: COMPLETED here; the bank booked no payment.
	CompletedUnknownToBank = "completed_unknown_to_bank"
	// AmountDiffers: the bank paid another amount than the payout's (or
	// paid it more than once).
	AmountDiffers = "amount_differs"
	// ReturnNotApplied: the bank booked a return; the payout is not
	// REVERSED here.
	ReturnNotApplied = "return_not_applied"
	// ReversedUnknownToBank: REVERSED here; the bank booked no return.
	ReversedUnknownToBank = "reversed_unknown_to_bank"
)

// Difference is one disagreement between the bank and the ledger.
type Difference struct {
	Kind         string    `json:"kind"`
	Reference    string    `json:"reference"`
	At           time.Time `json:"at"`
	BankAmount   int64     `json:"bank_amount"`
	LedgerAmount int64     `json:"ledger_amount"`
	Status       string    `json:"status"` // the payout's status here; "" when unknown here
}

// Report is the reconciliation of one bank's day in one environment.
type Report struct {
	Environment string       `json:"environment"`
	Bank        string       `json:"bank"`
	Date        string       `json:"date"` // YYYY-MM-DD, Asia/Jakarta
	Until       time.Time    `json:"until"`
	BankEntries int          `json:"bank_entries"`
	Movements   int          `json:"ledger_movements"`
	Differences []Difference `json:"differences"`
}

// OK reports no difference.
func (r Report) OK() bool { return len(r.Differences) == 0 }

// WriteTable writes the report as a readable table.
func (r Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s bank %s, %s (Asia/Jakarta) until %s: %d statement entries, %d ledger movements, %d difference(s)\n",
		r.Environment, r.Bank, r.Date, r.Until.In(connectors.Jakarta).Format("15:04:05"), r.BankEntries, r.Movements, len(r.Differences))
	if r.OK() {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tREFERENCE\tAT (WIB)\tBANK AMOUNT\tLEDGER AMOUNT\tSTATUS HERE")
	for _, d := range r.Differences {
		status := d.Status
		if status == "" {
			status = "(unknown)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", d.Kind, d.Reference, d.At.In(connectors.Jakarta).Format("15:04:05"), d.BankAmount, d.LedgerAmount, status)
	}
	return tw.Flush()
}

// Reconciler compares one environment's banks' statements with the ledger.
type Reconciler struct {
	// Bank reads the statements of Environment's gateway.
	Bank Reader
	// Environment is whose gateway Bank is (default sandbox): only its
	// payouts' settlements and returns are compared, and a statement entry
	// for a payout of the other environment counts as unknown here.
	Environment string
	Payouts     *payout.Store
	Ledger      *ledger.Store
	// Grace leaves out what happened in the last Grace before now, on both
	// sides: what the follower and the workers are still applying.
	Grace time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// margin widens the window read for matching, so that a payment booked by
// the bank just before midnight and here just after (or the other way)
// matches; differences are listed only for the day itself.
const margin = time.Hour

// Day is the start of date's day in Asia/Jakarta; date is YYYY-MM-DD.
func Day(date string) (time.Time, error) {
	t, err := time.ParseInLocation(time.DateOnly, date, connectors.Jakarta)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q is not YYYY-MM-DD", date)
	}
	return t, nil
}

// Reconcile compares bank's statement for the day starting at day (see
// Day) with the ledger.
func (rc *Reconciler) Reconcile(ctx context.Context, bank string, day time.Time) (Report, error) {
	b, ok := connectors.Lookup(bank)
	if !ok || b.Kind != connectors.KindBank {
		return Report{}, fmt.Errorf("bank %q: %w (a bank code, not an e-wallet's: e-wallets book at their host bank)", bank, connectors.ErrUnknownBank)
	}
	now := time.Now()
	if rc.Now != nil {
		now = rc.Now()
	}
	env := rc.env()
	until := now.Add(-rc.Grace)
	dayEnd := day.AddDate(0, 0, 1)
	rep := Report{Environment: env, Bank: bank, Date: day.Format(time.DateOnly), Until: earliest(until, dayEnd).UTC(), Differences: []Difference{}}
	inDay := func(t time.Time) bool { return !t.Before(day) && t.Before(dayEnd) && t.Before(until) }
	from, to := day.Add(-margin), earliest(dayEnd.Add(margin), until)
	if !from.Before(to) {
		return rep, nil // the day has not started (before the grace)
	}

	// The bank's side, by reference.
	type bankSide struct {
		paid, returned   bool
		paidAt, returnAt time.Time
		amount           int64
	}
	bs := map[string]*bankSide{}
	var order []string
	cursor := ""
	for {
		page, err := rc.Bank.Statement(ctx, bank, connectors.StatementQuery{After: cursor, Limit: 5000, From: from, To: to})
		if err != nil {
			return rep, fmt.Errorf("read the statement of %s: %w", bank, err)
		}
		for _, e := range page.Entries {
			s := bs[e.Reference]
			if s == nil {
				s = &bankSide{}
				bs[e.Reference] = s
				order = append(order, e.Reference)
			}
			switch e.Kind {
			case connectors.EntryPaid:
				if !s.paid {
					s.paidAt = e.BookedAt
				}
				s.paid = true
				s.amount += e.Amount
			case connectors.EntryReturned:
				s.returned, s.returnAt = true, e.BookedAt
			}
			if inDay(e.BookedAt) {
				rep.BankEntries++
			}
		}
		cursor = page.Next
		if !page.More {
			break
		}
	}

	// The ledger's side.
	var codes []string
	for _, c := range connectors.All() {
		if connectors.HostOf(c.Code) == bank {
			codes = append(codes, c.Code)
		}
	}
	all, err := rc.Ledger.Movements(ctx, codes, from, to)
	if err != nil {
		return rep, err
	}
	ids := slices.Clone(order)
	for _, m := range all {
		ids = append(ids, m.DisbursementID)
	}
	payouts, err := rc.Payouts.LoadMany(ctx, ids)
	if err != nil {
		return rep, err
	}
	// Only this environment's payouts went to this gateway.
	for id, d := range payouts {
		if d.Environment != env {
			delete(payouts, id)
		}
	}
	var moves []ledger.Movement
	for _, m := range all {
		if _, ok := payouts[m.DisbursementID]; !ok {
			continue
		}
		moves = append(moves, m)
		if inDay(m.At) {
			rep.Movements++
		}
	}
	add := func(kind, ref string, at time.Time, bankAmount int64) {
		d, ok := payouts[ref]
		diff := Difference{Kind: kind, Reference: ref, At: at.UTC(), BankAmount: bankAmount}
		if ok {
			diff.LedgerAmount, diff.Status = d.Amount, string(d.Status)
		}
		rep.Differences = append(rep.Differences, diff)
	}

	for _, ref := range order {
		s := bs[ref]
		d, known := payouts[ref]
		if s.paid && inDay(s.paidAt) {
			switch {
			case !known || (d.Status != payout.Completed && d.Status != payout.Reversed):
				add(PaidNotCompleted, ref, s.paidAt, s.amount)
			case s.amount != d.Amount:
				add(AmountDiffers, ref, s.paidAt, s.amount)
			}
		}
		if s.returned && inDay(s.returnAt) && (!known || d.Status != payout.Reversed) {
			add(ReturnNotApplied, ref, s.returnAt, s.amount)
		}
	}
	for _, m := range moves {
		if !inDay(m.At) {
			continue
		}
		s := bs[m.DisbursementID]
		switch {
		case m.Kind == "settle" && (s == nil || !s.paid):
			add(CompletedUnknownToBank, m.DisbursementID, m.At, 0)
		case m.Kind == "return" && (s == nil || !s.returned):
			amt := int64(0)
			if s != nil {
				amt = s.amount
			}
			add(ReversedUnknownToBank, m.DisbursementID, m.At, amt)
		}
	}
	slices.SortStableFunc(rep.Differences, func(a, b Difference) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Reference, b.Reference)
	})
	return rep, nil
}

func (rc *Reconciler) env() string {
	if rc.Environment == "" {
		return payout.Sandbox
	}
	return rc.Environment
}

// Schedule runs Reconcile for today and yesterday (Asia/Jakarta) for every
// bank at start and then every `every` (default 15m), and sets
// disburse_reconcile_differences{environment,bank}. It returns when ctx
// ends.
func (rc *Reconciler) Schedule(ctx context.Context, banks []string, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 15 * time.Minute
	}
	if len(banks) == 0 {
		for _, b := range connectors.All() {
			if b.Kind == connectors.KindBank {
				banks = append(banks, b.Code)
			}
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rc.RunDays(ctx, banks, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunDays reconciles today and yesterday for banks once and sets the gauge.
func (rc *Reconciler) RunDays(ctx context.Context, banks []string, log *slog.Logger) {
	now := time.Now()
	if rc.Now != nil {
		now = rc.Now()
	}
	y, m, d := now.In(connectors.Jakarta).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, connectors.Jakarta)
	for _, bank := range banks {
		n := 0
		var failed error
		for _, day := range []time.Time{today.AddDate(0, 0, -1), today} {
			rep, err := rc.Reconcile(ctx, bank, day)
			if err != nil {
				failed = err
				break
			}
			n += len(rep.Differences)
			for _, diff := range rep.Differences {
				log.Warn("reconciliation difference", "environment", rep.Environment, "bank", bank, "date", rep.Date, "kind", diff.Kind,
					"disbursement_id", diff.Reference, "bank_amount", diff.BankAmount, "ledger_amount", diff.LedgerAmount, "status", diff.Status)
			}
		}
		if failed != nil {
			if ctx.Err() == nil {
				log.Warn("scheduled reconciliation failed", "environment", rc.env(), "bank", bank, "err", failed)
			}
			continue
		}
		differencesGauge.WithLabelValues(rc.env(), bank).Set(float64(n))
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
