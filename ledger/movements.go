package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Movement is a payout's settlement or return as the ledger booked it: what
// a bank's statement is reconciled against.
type Movement struct {
	DisbursementID string
	Kind           string // "settle" (paid) or "return"
	At             time.Time
	Amount         int64 // the payout's amount, fee excluded: what the bank moved
	Currency       string
}

// Movements lists the settlements and returns booked in [from, to) of
// payouts to the given bank codes.
func (s *Store) Movements(ctx context.Context, bankCodes []string, from, to time.Time) ([]Movement, error) {
	rows, err := s.db.Query(ctx, `SELECT j.disbursement_id, j.kind, j.created_at, d.amount, d.currency
		FROM journal_entries j JOIN disbursements d ON d.id = j.disbursement_id
		WHERE j.kind IN ('settle', 'return') AND j.created_at >= $1 AND j.created_at < $2 AND d.bank_code = ANY($3)
		ORDER BY j.created_at, j.id`, from, to, bankCodes)
	if err != nil {
		return nil, fmt.Errorf("read movements: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Movement, error) {
		var m Movement
		err := r.Scan(&m.DisbursementID, &m.Kind, &m.At, &m.Amount, &m.Currency)
		return m, err
	})
}
