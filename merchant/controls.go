package merchant

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// WriteAudit records, inside the caller's transaction, a change of an
// environment's setting by actor (a key id, a dashboard user, operator) in
// the settings audit log: the payout controls of issue 14 (velocity
// limits, pauses, the approval policy) are audited like the access settings.
func WriteAudit(ctx context.Context, tx pgx.Tx, at time.Time, merchantID, environment, actor, setting string, oldValue, newValue any) error {
	return writeAudit(ctx, tx, at, merchantID, environment, actor, setting, oldValue, newValue)
}
