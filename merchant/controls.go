package merchant

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Settings reads an environment's fee and limits (ErrNotFound when the
// environment is not active).
func (s *Store) Settings(ctx context.Context, merchantID, environment string) (Settings, error) {
	var st Settings
	err := s.db.QueryRow(ctx, `SELECT fee_flat, fee_bps, max_per_payout, max_per_day FROM merchant_environments
		WHERE merchant_id = $1 AND environment = $2`, merchantID, environment).Scan(&st.FeeFlat, &st.FeeBPS, &st.MaxPerPayout, &st.MaxPerDay)
	if errors.Is(err, pgx.ErrNoRows) {
		return Settings{}, ErrNotFound
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read settings: %w", err)
	}
	return st, nil
}
