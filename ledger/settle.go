package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/disburse/disburse/payout"
)

// Outcome is what the bank decided about a debited payout.
type Outcome struct {
	Completed   bool
	FailureCode string // when not Completed
}

// Settle ends a PROCESSING payout: COMPLETED moves the debit to paid out and
// fees; FAILED returns amount and fee to available. A payout not PROCESSING
// is returned as it is with changed=false, so a repeated outcome is a no-op.
func (s *Store) Settle(ctx context.Context, id string, o Outcome) (d payout.Disbursement, changed bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		d, changed, err = settle(ctx, tx, id, o)
		return err
	})
	return d, changed, err
}

func settle(ctx context.Context, tx pgx.Tx, id string, o Outcome) (payout.Disbursement, bool, error) {
	d, err := payout.Scan(tx.QueryRow(ctx, `SELECT `+payout.Columns+` FROM disbursements WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, payout.ErrNotFound
	}
	if err != nil || d.Status != payout.Processing {
		return d, false, err
	}
	funding, err := fundedBy(ctx, tx, id)
	if err != nil {
		return d, false, err
	}
	total := d.Amount + d.Fee
	kind, legs, status, failure := "settle", map[string]int64{InFlight: -total, PaidOut: d.Amount, Fees: d.Fee}, payout.Completed, ""
	if !o.Completed {
		kind, legs, status, failure = "fail", map[string]int64{InFlight: -total, funding: total}, payout.Failed, o.FailureCode
		if failure == "" {
			failure = payout.BankRejected
		}
	}
	if d.Fee == 0 {
		delete(legs, Fees)
	}
	if err := post(ctx, tx, kind, d.MerchantID, d.Environment, d.Currency, &d.ID, "", legs); err != nil {
		return d, false, err
	}
	d, err = payout.Scan(tx.QueryRow(ctx, `WITH changed AS (
			UPDATE disbursements SET status = $2, failure_code = $3,
				version = version + 1, updated_at = now(), completed_at = now()
			WHERE id = $1 RETURNING *), `+payout.RecordEvents+`
		SELECT `+payout.Columns+` FROM changed`, id, status, failure))
	if err != nil {
		return d, false, fmt.Errorf("update payout: %w", err)
	}
	movements.WithLabelValues(kind).Inc()
	return d, true, nil
}

// Return records that the bank sent a COMPLETED payout back: the amount goes
// back to available and the payout becomes REVERSED. The fee is kept (the
// bank did the transfer). Not COMPLETED: a no-op with changed=false.
func (s *Store) Return(ctx context.Context, id string) (d payout.Disbursement, changed bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		d, err = payout.Scan(tx.QueryRow(ctx, `SELECT `+payout.Columns+` FROM disbursements WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return payout.ErrNotFound
		}
		if err != nil || d.Status != payout.Completed {
			changed = false
			return err
		}
		funding, err := fundedBy(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := post(ctx, tx, "return", d.MerchantID, d.Environment, d.Currency, &d.ID, "", map[string]int64{
			PaidOut: -d.Amount, funding: d.Amount,
		}); err != nil {
			return err
		}
		d, err = payout.Scan(tx.QueryRow(ctx, `WITH changed AS (
				UPDATE disbursements SET status = 'REVERSED', version = version + 1, updated_at = now()
				WHERE id = $1 RETURNING *), `+payout.RecordEvents+`
			SELECT `+payout.Columns+` FROM changed`, id))
		changed = err == nil
		return err
	})
	if changed {
		movements.WithLabelValues("return").Inc()
	}
	return d, changed, err
}

// fundedBy is the account that paid for a payout: money coming back goes there.
func fundedBy(ctx context.Context, tx pgx.Tx, id string) (string, error) {
	var funding string
	err := tx.QueryRow(ctx, `SELECT funded_by FROM disbursements WHERE id = $1`, id).Scan(&funding)
	return funding, err
}
