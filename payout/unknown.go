package payout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartTransfer records a transfer call about to be made, like StartCall
// (fenced by owner's lease: ErrLeaseLost when it is not live), and
// schedules the reconciler's first look at the payout checkAfter from now,
// in case the outcome stays unknown. A payout that settles before then
// leaves the reconciler's scan without being looked at.
func (s *Store) StartTransfer(ctx context.Context, disbursementID, owner string, checkAfter time.Duration) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `WITH leased AS (
			SELECT 1 FROM dispatch_leases WHERE disbursement_id = $1 AND owner = $2 AND expires_at > now()),
		due AS (
			UPDATE disbursements SET check_at = now() + $3::bigint * interval '1 millisecond', checks = 0
			WHERE id = $1 AND EXISTS (SELECT 1 FROM leased))
		INSERT INTO bank_calls (disbursement_id, kind)
		SELECT $1, 'transfer' WHERE EXISTS (SELECT 1 FROM leased)
		RETURNING id`, disbursementID, owner, checkAfter.Milliseconds()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrLeaseLost
	}
	if err != nil {
		return 0, fmt.Errorf("record bank call: %w", err)
	}
	return id, nil
}

// Due is a PROCESSING payout the reconciler should ask its bank about.
type Due struct {
	ID       string
	BankCode string
	// Checks counts the times it was taken, this one included.
	Checks int
	// MaybeSent: a transfer call may have reached the bank (see MaybeSent).
	// A due payout that was never sent is the lanes' (it is parked).
	MaybeSent bool
}

// TakeDue takes up to limit PROCESSING payouts whose check is due, most
// overdue first, and pushes each one's next check back as it takes it:
// base doubling per check up to maxGap. So every due payout is reached in
// turn however many stay unresolved, and two reconcilers never take the
// same payout at once (rows locked by another are skipped).
func (s *Store) TakeDue(ctx context.Context, limit int, base, maxGap time.Duration) ([]Due, error) {
	rows, err := s.db.Query(ctx, `WITH due AS (
			SELECT id FROM disbursements
			WHERE status = 'PROCESSING' AND check_at IS NOT NULL AND check_at <= now()
			ORDER BY check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE disbursements d SET checks = d.checks + 1,
			check_at = now() + least($3::bigint, $2::bigint * power(2, least(d.checks, 20))::bigint) * interval '1 millisecond'
		FROM due WHERE d.id = due.id
		RETURNING d.id, d.bank_code, d.checks, EXISTS (SELECT 1 FROM bank_calls c
			WHERE c.disbursement_id = d.id AND c.kind = 'transfer' AND c.outcome NOT IN ('not_sent', 'not_received'))`,
		limit, base.Milliseconds(), maxGap.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("take due payouts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Due, error) {
		var d Due
		err := r.Scan(&d.ID, &d.BankCode, &d.Checks, &d.MaybeSent)
		return d, err
	})
}
