package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/payout"
)

var settleSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
	Name:    "disburse_ledger_settle_group_seconds",
	Help:    "Time to settle one group of bank outcomes in one transaction.",
	Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
})

// Outcome is what the bank decided about a payout.
type Outcome struct {
	ID          string
	Completed   bool
	FailureCode string // when not Completed (default BANK_REJECTED)
	// Returned: the bank paid, then sent the money back. A PROCESSING
	// payout is settled COMPLETED and then REVERSED in the same
	// transaction (two events, in that order); a COMPLETED one is reversed.
	Returned bool
}

// Settle ends one PROCESSING payout (SettleAll of one). A payout not
// PROCESSING is returned as it is with changed=false, so a repeated outcome
// is a no-op.
func (s *Store) Settle(ctx context.Context, id string, o Outcome) (payout.Disbursement, bool, error) {
	o.ID = id
	out, changed, err := s.SettleAll(ctx, []Outcome{o}, nil)
	if err != nil || len(out) == 0 {
		if err == nil {
			err = payout.ErrNotFound
		}
		return payout.Disbursement{}, false, err
	}
	return out[0], changed[0], nil
}

// Return records that the bank sent a COMPLETED payout back (SettleAll of
// one return). Not COMPLETED: a no-op with changed=false.
func (s *Store) Return(ctx context.Context, id string) (payout.Disbursement, bool, error) {
	return s.Settle(ctx, id, Outcome{Completed: true, Returned: true})
}

// SettleAll applies a group of bank outcomes in one transaction, with a
// fixed number of statements whatever the group's size:
//
//  1. lock the payouts, in id order;
//  2. decide each: COMPLETED moves the debit to paid out and fees; FAILED
//     returns amount and fee to the funding account; a return moves the
//     amount from paid out back to the funding account (the fee is kept:
//     the bank did the transfer). A payout in any other status is left
//     alone, so a repeated or late outcome is a no-op;
//  3. write the journal entries and postings (multi-row);
//  4. run within, in the same transaction: the caller's own writes about
//     the group (finishing bank calls, releasing leases);
//  5. move the payouts' statuses with their events (payout.MoveSet);
//  6. lock the accounts in id order and update each balance once;
//  7. update the batches' progress.
//
// Locks are taken in the order every money movement takes them (payouts,
// then accounts, then batch rows, as ApplyDebits does), so a debit and a
// settlement of one merchant cannot deadlock. The rows every movement of
// the merchant shares, its accounts and its batch's row, are locked by the
// last two statements and held only until the commit: the group's heavy
// writes (entries, postings, status changes and events) run while a debit
// of the same merchant runs beside them.
//
// It returns every known payout of the group as it ends, with changed
// marking those this call moved.
func (s *Store) SettleAll(ctx context.Context, outcomes []Outcome, within func(pgx.Tx) error) (out []payout.Disbursement, changed []bool, err error) {
	if len(outcomes) == 0 {
		return nil, nil, nil
	}
	start := time.Now()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, changed, err = settleAll(ctx, tx, outcomes, within)
		return err
	})
	if err == nil {
		settleSeconds.Observe(time.Since(start).Seconds())
	}
	return out, changed, err
}

// entry is one journal entry to write: a movement of one payout.
type entry struct {
	kind string
	d    payout.Disbursement
	legs map[string]int64 // account kind -> amount; sums to zero
}

func settleAll(ctx context.Context, tx pgx.Tx, outcomes []Outcome, within func(pgx.Tx) error) ([]payout.Disbursement, []bool, error) {
	ids := make([]string, len(outcomes))
	for i, o := range outcomes {
		ids[i] = o.ID
	}
	byID, err := payout.Locked(ctx, tx, ids)
	if err != nil {
		return nil, nil, err
	}
	funding, err := fundedBy(ctx, tx, byID)
	if err != nil {
		return nil, nil, err
	}
	var entries []entry
	var settled, returned []payout.Move
	seen := map[string]bool{}
	for _, o := range outcomes {
		d, ok := byID[o.ID]
		if !ok || seen[o.ID] {
			continue
		}
		seen[o.ID] = true
		total := d.Amount + d.Fee
		switch {
		case d.Status == payout.Processing && o.Completed:
			legs := map[string]int64{InFlight: -total, PaidOut: d.Amount}
			if d.Fee != 0 {
				legs[Fees] = d.Fee
			}
			entries = append(entries, entry{"settle", d, legs})
			settled = append(settled, payout.Move{ID: d.ID, To: payout.Completed})
			if o.Returned {
				entries = append(entries, entry{"return", d, map[string]int64{PaidOut: -d.Amount, funding[d.ID]: d.Amount}})
				returned = append(returned, payout.Move{ID: d.ID, To: payout.Reversed})
			}
		case d.Status == payout.Processing:
			code := o.FailureCode
			if code == "" {
				code = payout.BankRejected
			}
			entries = append(entries, entry{"fail", d, map[string]int64{InFlight: -total, funding[d.ID]: total}})
			settled = append(settled, payout.Move{ID: d.ID, To: payout.Failed, FailureCode: code})
		case d.Status == payout.Completed && o.Returned:
			entries = append(entries, entry{"return", d, map[string]int64{PaidOut: -d.Amount, funding[d.ID]: d.Amount}})
			returned = append(returned, payout.Move{ID: d.ID, To: payout.Reversed})
		}
	}
	deltas, err := postEntries(ctx, tx, entries)
	if err != nil {
		return nil, nil, err
	}
	if within != nil {
		if err := within(tx); err != nil {
			return nil, nil, err
		}
	}
	moved := map[string]payout.Disbursement{}
	var progress []payout.Progress
	for _, step := range []struct {
		from  payout.Status
		moves []payout.Move
	}{{payout.Processing, settled}, {payout.Completed, returned}} {
		ds, p, err := payout.MoveSet(ctx, tx, step.from, step.moves)
		if err != nil {
			return nil, nil, err
		}
		if len(ds) != len(step.moves) {
			return nil, nil, fmt.Errorf("ledger: %d of %d payouts changed under the lock", len(step.moves)-len(ds), len(step.moves))
		}
		for _, d := range ds {
			moved[d.ID] = d
		}
		progress = append(progress, p)
	}
	if err := applyBalances(ctx, tx, deltas); err != nil {
		return nil, nil, err
	}
	for _, p := range progress {
		if err := p.Apply(ctx, tx); err != nil {
			return nil, nil, err
		}
	}
	for _, e := range entries {
		movements.WithLabelValues(e.kind).Inc()
	}
	out := make([]payout.Disbursement, 0, len(seen))
	changed := make([]bool, 0, len(seen))
	done := map[string]bool{}
	for _, o := range outcomes {
		d, ok := byID[o.ID]
		if !ok || done[o.ID] {
			continue
		}
		done[o.ID] = true
		if m, ok := moved[o.ID]; ok {
			out, changed = append(out, m), append(changed, true)
		} else {
			out, changed = append(out, d), append(changed, false)
		}
	}
	return out, changed, nil
}

// fundedBy is the account kind that paid for each payout: money coming
// back goes there.
func fundedBy(ctx context.Context, tx pgx.Tx, byID map[string]payout.Disbursement) (map[string]string, error) {
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	rows, err := tx.Query(ctx, `SELECT id, funded_by FROM disbursements WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read funding: %w", err)
	}
	out := make(map[string]string, len(ids))
	for rows.Next() {
		var id, f string
		if err := rows.Scan(&id, &f); err != nil {
			rows.Close()
			return nil, err
		}
		out[id] = f
	}
	return out, rows.Err()
}

// postEntries writes the entries and their postings with three statements (the
// account ids, the entries, the postings) and returns the balance change of
// each account, for applyBalances.
func postEntries(ctx context.Context, tx pgx.Tx, entries []entry) (map[int64]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	var ms, es, cs []string
	scopes := map[scope]bool{}
	for _, e := range entries {
		var sum int64
		for _, a := range e.legs {
			sum += a
		}
		if sum != 0 {
			return nil, fmt.Errorf("ledger: unbalanced %s entry for %s (sums to %d)", e.kind, e.d.ID, sum)
		}
		sc := scope{e.d.MerchantID, e.d.Environment, e.d.Currency}
		if !scopes[sc] {
			scopes[sc] = true
			ms, es, cs = append(ms, sc.merchant), append(es, sc.environment), append(cs, sc.currency)
		}
	}
	rows, err := tx.Query(ctx, `SELECT id, merchant_id, environment, currency, kind FROM accounts
		WHERE (merchant_id, environment, currency) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`, ms, es, cs)
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	accounts := map[scope]map[string]int64{}
	for rows.Next() {
		var id int64
		var sc scope
		var kind string
		if err := rows.Scan(&id, &sc.merchant, &sc.environment, &sc.currency, &kind); err != nil {
			rows.Close()
			return nil, err
		}
		if accounts[sc] == nil {
			accounts[sc] = map[string]int64{}
		}
		accounts[sc][kind] = id
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	kinds := make([]string, len(entries))
	dids := make([]string, len(entries))
	for i, e := range entries {
		kinds[i], dids[i] = e.kind, e.d.ID
	}
	rows, err = tx.Query(ctx, `INSERT INTO journal_entries (kind, merchant_id, environment, currency, disbursement_id)
		SELECT u.kind, d.merchant_id, d.environment, d.currency, d.id
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(kind, id, n) JOIN disbursements d ON d.id = u.id
		ORDER BY u.n
		RETURNING id, kind, disbursement_id`, kinds, dids)
	if err != nil {
		return nil, fmt.Errorf("insert entries: %w", err)
	}
	entryOf := make(map[[2]string]int64, len(entries))
	for rows.Next() {
		var id int64
		var kind, did string
		if err := rows.Scan(&id, &kind, &did); err != nil {
			rows.Close()
			return nil, err
		}
		entryOf[[2]string{kind, did}] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert entries: %w", err)
	}

	var pEntry, pAccount, pAmount []int64
	deltas := map[int64]int64{}
	for _, e := range entries {
		acc := accounts[scope{e.d.MerchantID, e.d.Environment, e.d.Currency}]
		eid := entryOf[[2]string{e.kind, e.d.ID}]
		for k, a := range e.legs {
			id, ok := acc[k]
			if !ok {
				return nil, ErrNoAccounts
			}
			pEntry, pAccount, pAmount = append(pEntry, eid), append(pAccount, id), append(pAmount, a)
			deltas[id] += a
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO postings (entry_id, account_id, amount)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])`, pEntry, pAccount, pAmount); err != nil {
		return nil, fmt.Errorf("insert postings: %w", err)
	}
	return deltas, nil
}

// applyBalances locks the accounts in id order and updates each balance
// once. Called last in a transaction, it holds the merchant's account rows,
// which every movement of the merchant needs, only until the commit.
func applyBalances(ctx context.Context, tx pgx.Tx, deltas map[int64]int64) error {
	if len(deltas) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(deltas))
	for id, x := range deltas {
		if x != 0 {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	amounts := make([]int64, len(ids))
	for i, id := range ids {
		amounts[i] = deltas[id]
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, ids); err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + p.x
		FROM unnest($1::bigint[], $2::bigint[]) AS p(a, x) WHERE accounts.id = p.a`, ids, amounts); err != nil {
		return fmt.Errorf("update balances: %w", err)
	}
	return nil
}
