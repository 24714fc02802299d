package statement

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
)

var (
	entriesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_statement_entries_total",
		Help: "Bank statement entries the follower read, by environment, bank, kind (PAID, REJECTED, RETURNED) and result (applied: the ledger changed; matched: it already agreed; unknown_payout; wrong_environment: a payout of the other environment, never applied; conflict: the ledger disagrees and reconciliation lists it).",
	}, []string{"environment", "bank", "kind", "result"})
	followErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_statement_errors_total",
		Help: "Failed statement reads or applications, by environment, bank and reason (bad_cursor needs an operator).",
	}, []string{"environment", "bank", "reason"})
)

// Reader reads a bank's statement: *connectors.Guard.
type Reader interface {
	Statement(ctx context.Context, bankCode string, q connectors.StatementQuery) (connectors.StatementPage, error)
}

// Follower applies one environment's banks' statements to the ledger. Run
// one per environment that has a gateway in every dispatch worker: one per
// bank and environment follows at a time.
type Follower struct {
	// Bank reads the statements of Environment's gateway.
	Bank    Reader
	Cursors *Cursors
	Payouts *payout.Store
	Ledger  *ledger.Store
	Log     *slog.Logger

	// Environment is whose gateway Bank is (default sandbox): its own
	// cursors, and only its payouts are settled from the statement; an
	// entry for a payout of the other environment is never applied.
	Environment string

	// Banks are the banks whose statements are followed (default: every
	// bank of connectors.All, e-wallets excluded: they book at their host).
	Banks []string
	// Every is the wait between reads once a statement is caught up
	// (default 1s).
	Every time.Duration
	// Lease is how long a follower holds a bank's statement without
	// renewing it; a standby takes over after that (default 15s).
	Lease time.Duration
	// PageSize is entries per read (default 500).
	PageSize int
	// SettleAfter is how old a PAID, REJECTED or RETURNED entry for a
	// payout still PROCESSING here must be before the follower settles the
	// payout from it: until then its dispatch worker, which has the same
	// answer on its way, is left to do it (default 15s). The cursor waits
	// at such an entry meanwhile.
	SettleAfter time.Duration
	// Instance names this process in the lease (default host and pid).
	Instance string
	// RestartOnBadCursor: when the bank does not know the stored cursor,
	// read its statement again from the start instead of stopping for an
	// operator. Re-applying entries changes nothing, so this is safe; it is
	// meant for the sandbox bank, whose statement lives in memory and
	// starts empty when it restarts (disburse dev turns it on).
	RestartOnBadCursor bool
}

func (f *Follower) defaults() {
	if f.Environment == "" {
		f.Environment = payout.Sandbox
	}
	if len(f.Banks) == 0 {
		for _, b := range connectors.All() {
			if b.Kind == connectors.KindBank {
				f.Banks = append(f.Banks, b.Code)
			}
		}
	}
	if f.Every <= 0 {
		f.Every = time.Second
	}
	if f.Lease <= 0 {
		f.Lease = 15 * time.Second
	}
	if f.PageSize <= 0 {
		f.PageSize = 500
	}
	if f.SettleAfter <= 0 {
		f.SettleAfter = 15 * time.Second
	}
	if f.Instance == "" {
		host, _ := os.Hostname()
		f.Instance = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if f.Log == nil {
		f.Log = slog.Default()
	}
}

// Run follows every bank's statement until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	f.defaults()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	owner := f.Instance + "/" + hex.EncodeToString(b)
	var wg sync.WaitGroup
	for _, bank := range f.Banks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.follow(ctx, bank, owner)
		}()
	}
	wg.Wait()
	return nil
}

// follow is one bank's loop: stand by until the lease is ours, then read
// and apply page after page, renewing the lease with every cursor stored.
func (f *Follower) follow(ctx context.Context, bank, owner string) {
	log := f.Log.With("environment", f.Environment, "bank", bank)
	backoff := retry.Backoff{Base: f.Every, Max: 30 * time.Second}
	failures := 0
	held := false
	defer func() {
		if held {
			_ = f.Cursors.Release(context.WithoutCancel(ctx), f.Environment, bank, owner)
		}
	}()
	for ctx.Err() == nil {
		more, ok, err := f.Step(ctx, bank, owner)
		if ok != held {
			held = ok
			log.Info("statement lease changed", "held", held, "owner", owner)
		}
		wait := f.Every
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			wait = backoff.Delay(min(failures-1, 6))
			reason := "read"
			if errors.Is(err, connectors.ErrBadCursor) {
				reason = "bad_cursor"
				log.Error("the bank does not know the stored statement cursor; reset it (DELETE FROM statement_cursors WHERE bank = ... AND environment = ...) to read the statement from its start", "err", err)
			} else {
				log.Warn("statement follower", "err", err)
			}
			followErrors.WithLabelValues(f.Environment, bank, reason).Inc()
		case err == nil:
			failures = 0
			if more {
				wait = 0
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// Step reads and applies one page of bank's statement as owner: it takes
// or renews the lease (held false: another follower has it, nothing done),
// applies the entries in order and stores the cursor after the last one
// applied. more says there is more to read now.
func (f *Follower) Step(ctx context.Context, bank, owner string) (more, held bool, err error) {
	f.defaults()
	cursor, held, err := f.Cursors.Acquire(ctx, f.Environment, bank, owner, f.Lease)
	if err != nil || !held {
		return false, held, err
	}
	page, err := f.Bank.Statement(ctx, bank, connectors.StatementQuery{After: cursor, Limit: f.PageSize})
	if errors.Is(err, connectors.ErrBadCursor) && f.RestartOnBadCursor && cursor != "" {
		f.Log.Warn("the bank does not know the stored statement cursor; reading its statement from the start", "environment", f.Environment, "bank", bank, "cursor", cursor, "err", err)
		if err := f.Cursors.Advance(ctx, f.Environment, bank, owner, cursor, "", f.Lease); err != nil {
			return false, !errors.Is(err, ErrLeaseLost), err
		}
		return true, true, nil
	}
	if err != nil {
		return false, true, fmt.Errorf("read the statement of %s: %w", bank, err)
	}
	if len(page.Entries) == 0 {
		return false, true, nil
	}
	applied, waiting, err := f.apply(ctx, bank, page.Entries)
	next := cursor
	if applied > 0 {
		next = page.Entries[applied-1].Cursor
	}
	if next != cursor {
		if aerr := f.Cursors.Advance(ctx, f.Environment, bank, owner, cursor, next, f.Lease); aerr != nil {
			return false, !errors.Is(aerr, ErrLeaseLost), errors.Join(err, aerr)
		}
	}
	if err != nil {
		return false, true, err
	}
	return page.More && !waiting, true, nil
}

// apply applies entries in order and returns how many, from the first, are
// done with. It stops early at an entry it must wait for (waiting) or that
// failed (err).
func (f *Follower) apply(ctx context.Context, bank string, entries []connectors.StatementEntry) (n int, waiting bool, err error) {
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Reference)
	}
	payouts, err := f.Payouts.LoadMany(ctx, ids)
	if err != nil {
		return 0, false, err
	}
	now := time.Now()
	for i, e := range entries {
		d, ok := payouts[e.Reference]
		result := "matched"
		switch {
		case !ok:
			result = "unknown_payout"
			f.Log.Warn("statement entry for no payout of ours; reconciliation lists it", "environment", f.Environment, "bank", bank, "reference", e.Reference, "kind", e.Kind, "amount", e.Amount)
		case d.Environment != f.Environment:
			// Never settle a payout from another environment's banks: a
			// gateway misconfigured to serve both would otherwise move
			// production money on the simulator's word.
			result = "wrong_environment"
			f.Log.Error("statement entry for a payout of another environment; not applied (is a gateway shared by both environments?)",
				"environment", f.Environment, "bank", bank, "reference", e.Reference, "kind", e.Kind, "payout_environment", d.Environment)
		case d.Status == payout.Processing && now.Sub(e.BookedAt) < f.SettleAfter:
			return i, true, nil // its worker may settle it yet; come back
		default:
			d, result, err = f.applyOne(ctx, bank, d, e)
			if err != nil {
				return i, false, fmt.Errorf("apply %s %s: %w", e.Kind, e.Reference, err)
			}
			payouts[d.ID] = d
		}
		entriesTotal.WithLabelValues(f.Environment, bank, string(e.Kind), result).Inc()
	}
	return len(entries), false, nil
}

// applyOne makes the ledger agree with one entry about payout d.
func (f *Follower) applyOne(ctx context.Context, bank string, d payout.Disbursement, e connectors.StatementEntry) (payout.Disbursement, string, error) {
	log := f.Log.With("disbursement_id", d.ID, "merchant_id", d.MerchantID, "environment", d.Environment, "bank", bank, "kind", e.Kind)
	result := "matched"
	var changed bool
	var err error
	switch e.Kind {
	case connectors.EntryPaid, connectors.EntryReturned:
		if d.Status == payout.Processing {
			if d, changed, err = f.Ledger.Settle(ctx, d.ID, ledger.Outcome{Completed: true}); err != nil {
				return d, "", err
			}
			if changed {
				result = "applied"
				log.Info("payout settled from the bank statement: paid")
			}
		}
		if e.Kind == connectors.EntryReturned && d.Status == payout.Completed {
			if d, changed, err = f.Ledger.Return(ctx, d.ID); err != nil {
				return d, "", err
			}
			if changed {
				result = "applied"
				log.Info("payout returned by the bank (statement); reversed, money back", "amount", d.Amount)
			}
		}
		switch {
		case e.Kind == connectors.EntryPaid && d.Status != payout.Completed && d.Status != payout.Reversed,
			e.Kind == connectors.EntryReturned && d.Status != payout.Reversed:
			result = "conflict"
			log.Warn("the bank's statement disagrees with the payout; reconciliation lists it", "status", d.Status)
		}
	case connectors.EntryRejected:
		if d.Status == payout.Processing {
			if d, changed, err = f.Ledger.Settle(ctx, d.ID, ledger.Outcome{FailureCode: e.FailureCode}); err != nil {
				return d, "", err
			}
			if changed {
				result = "applied"
				log.Info("payout failed from the bank statement: rejected", "failure_code", e.FailureCode)
			}
		}
		if d.Status != payout.Failed {
			result = "conflict"
			log.Warn("the bank rejected a payout that is not FAILED here; reconciliation lists it", "status", d.Status)
		}
	}
	return d, result, nil
}
