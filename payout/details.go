package payout

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// GetMany returns the payouts of the environment among ids, by id; ids it
// does not hold are absent. One query, by primary key (the report export
// asks for a page of up to 5,000 at a time).
func (s *Store) GetMany(ctx context.Context, merchantID, environment string, ids []string) (map[string]Disbursement, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM disbursements
		WHERE id = ANY($1) AND merchant_id = $2 AND environment = $3`, ids, merchantID, environment)
	if err != nil {
		return nil, fmt.Errorf("read payouts: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Disbursement, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("read payouts: %w", err)
	}
	out := make(map[string]Disbursement, len(list))
	for _, d := range list {
		out[d.ID] = d
	}
	return out, nil
}
