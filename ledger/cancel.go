package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/disburse/disburse/payout"
)

// ErrNotCancellable: the payout was handed to its bank (a dispatch worker
// claimed it, or a transfer may have reached the bank), or has ended.
var ErrNotCancellable = errors.New("ledger: payout can no longer be cancelled")

// cancelChunk bounds the payouts of a batch cancelled in one transaction.
const cancelChunk = 2000

// Cancel cancels one payout of the merchant's environment while it has not
// been handed to its bank: PENDING (nothing was debited), or PROCESSING
// with no dispatch claim and no transfer that may have reached the bank
// (parked, or waiting for dispatch); its debit comes back in the same
// transaction. CANCELLED is terminal and announced like any change. Anything
// else is ErrNotCancellable, with the payout as it is.
func (s *Store) Cancel(ctx context.Context, merchantID, environment, id string) (payout.Disbursement, error) {
	var d payout.Disbursement
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		done, kept, err := cancelSet(ctx, tx, merchantID, environment, []string{id})
		switch {
		case err != nil:
			return err
		case len(done) == 1:
			d = done[0]
			return nil
		case len(kept) == 1:
			d = kept[0]
			return ErrNotCancellable
		}
		return payout.ErrNotFound
	})
	return d, err
}

// CancelBatch cancels every item of the merchant's batch that can still be
// cancelled (see Cancel), a chunk of items per transaction, and reports how
// many were cancelled and how many were not (already at their bank or
// ended).
func (s *Store) CancelBatch(ctx context.Context, merchantID, environment, batchID string) (cancelled, kept int, err error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM disbursements
		WHERE batch_id = $1 AND merchant_id = $2 AND environment = $3 ORDER BY id`, batchID, merchantID, environment)
	if err != nil {
		return 0, 0, fmt.Errorf("batch items: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, fmt.Errorf("batch items: %w", err)
	}
	for len(ids) > 0 {
		n := min(len(ids), cancelChunk)
		chunk := ids[:n]
		ids = ids[n:]
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			done, notDone, err := cancelSet(ctx, tx, merchantID, environment, chunk)
			if err == nil {
				cancelled += len(done)
				kept += len(notDone)
			}
			return err
		})
		if err != nil {
			return cancelled, kept, err
		}
	}
	return cancelled, kept, nil
}

// FailUnsent fails a payout that was never handed to its bank (see Cancel)
// with the failure code, its debit returned in the same transaction: a
// payout whose bank stayed unavailable too long (BANK_UNAVAILABLE). A
// payout that may be at its bank is left alone: ErrNotCancellable.
func (s *Store) FailUnsent(ctx context.Context, id, failureCode string) (payout.Disbursement, error) {
	var d payout.Disbursement
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		done, kept, err := endUnsent(ctx, tx, []string{id}, nil, payout.Failed, failureCode, "fail")
		switch {
		case err != nil:
			return err
		case len(done) == 1:
			d = done[0]
			return nil
		case len(kept) == 1:
			d = kept[0]
			return ErrNotCancellable
		}
		return payout.ErrNotFound
	})
	return d, err
}

// cancelSet cancels what it can of the merchant environment's payouts,
// inside tx (see endUnsent).
func cancelSet(ctx context.Context, tx pgx.Tx, merchantID, environment string, ids []string) (done, kept []payout.Disbursement, err error) {
	own := func(d payout.Disbursement) bool { return d.MerchantID == merchantID && d.Environment == environment }
	return endUnsent(ctx, tx, ids, own, payout.Cancelled, "", "cancel")
}

// endUnsent ends, inside tx, the payouts that were never handed to their
// bank, moving them to status to (with failure code code): it locks them
// (a dispatch claim takes the same rows FOR SHARE, so a claim and this
// serialise), leaves out those filter rejects, returns the debit of the
// debited ones under an entry of kind, and returns the payouts it ended and
// those it could not (claimed by dispatch, maybe at the bank, or ended).
func endUnsent(ctx context.Context, tx pgx.Tx, ids []string, filter func(payout.Disbursement) bool, to payout.Status, code, kind string) (done, kept []payout.Disbursement, err error) {
	byID, err := payout.Locked(ctx, tx, ids)
	if err != nil {
		return nil, nil, err
	}
	var processing []string
	for _, id := range ids {
		d, ok := byID[id]
		if !ok || (filter != nil && !filter(d)) {
			delete(byID, id)
			continue
		}
		if d.Status == payout.Processing {
			processing = append(processing, id)
		}
	}
	handed := map[string]bool{}
	if len(processing) > 0 {
		rows, err := tx.Query(ctx, `SELECT disbursement_id FROM dispatch_leases WHERE disbursement_id = ANY($1) AND expires_at > now()
			UNION SELECT disbursement_id FROM bank_calls WHERE disbursement_id = ANY($1) AND kind = 'transfer'
				AND outcome NOT IN ('not_sent', 'not_received')`, processing)
		if err != nil {
			return nil, nil, fmt.Errorf("read claims: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, nil, fmt.Errorf("read claims: %w", err)
		}
		for _, id := range got {
			handed[id] = true
		}
	}
	funding, err := fundedBy(ctx, tx, byID)
	if err != nil {
		return nil, nil, err
	}
	var pending, debited []payout.Move
	var entries []entry
	for _, id := range ids {
		d, ok := byID[id]
		if !ok {
			continue
		}
		switch {
		case d.Status == payout.Pending:
			pending = append(pending, payout.Move{ID: id, To: to, FailureCode: code})
		case d.Status == payout.Processing && !handed[id]:
			total := d.Amount + d.Fee
			entries = append(entries, entry{kind, d, map[string]int64{InFlight: -total, funding[id]: total}})
			debited = append(debited, payout.Move{ID: id, To: to, FailureCode: code})
		default:
			kept = append(kept, d)
		}
	}
	deltas, err := postEntries(ctx, tx, entries)
	if err != nil {
		return nil, nil, err
	}
	if err := applyBalances(ctx, tx, deltas); err != nil {
		return nil, nil, err
	}
	for _, step := range []struct {
		from  payout.Status
		moves []payout.Move
	}{{payout.Pending, pending}, {payout.Processing, debited}} {
		moved, err := payout.MoveAll(ctx, tx, step.from, step.moves)
		if err != nil {
			return nil, nil, err
		}
		if len(moved) != len(step.moves) {
			return nil, nil, fmt.Errorf("ledger: %d of %d payouts changed under the lock", len(step.moves)-len(moved), len(step.moves))
		}
		done = append(done, moved...)
	}
	for range entries {
		movements.WithLabelValues(kind).Inc()
	}
	return done, kept, nil
}
