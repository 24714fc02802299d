package controls

import (
	"context"
	"fmt"

	"github.com/disburse/disburse/schemas/events"
)

// Pending lists the request records of an environment's PENDING payouts,
// oldest first: what a resume publishes again (the ledger stage held them
// while paused; any it debits twice over is a no-op, the debit dedups).
func (s *Store) Pending(ctx context.Context, merchantID, environment string) ([]events.Request, error) {
	rows, err := s.db.Query(ctx, `SELECT id, merchant_id, environment, reference_id, coalesce(batch_id, ''), bank_code, amount, currency, created_at
		FROM disbursements WHERE merchant_id = $1 AND environment = $2 AND status = 'PENDING' ORDER BY created_at, id`, merchantID, environment)
	if err != nil {
		return nil, fmt.Errorf("read pending payouts: %w", err)
	}
	defer rows.Close()
	var out []events.Request
	for rows.Next() {
		var r events.Request
		if err := rows.Scan(&r.DisbursementID, &r.MerchantID, &r.Environment, &r.ReferenceID, &r.BatchID, &r.BankCode, &r.Amount, &r.Currency, &r.AcceptedAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
