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
			INSERT INTO payout_checks (disbursement_id, check_at)
			SELECT $1, now() + $3::bigint * interval '1 millisecond' WHERE EXISTS (SELECT 1 FROM leased)
			ON CONFLICT (disbursement_id) DO UPDATE SET check_at = excluded.check_at, checks = 0)
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

// scheduleChecks schedules the reconciler's first look at each payout
// after from now, inside the claiming transaction: one statement for the
// set, on the narrow payout_checks table (00021) rather than the payouts'
// own rows, whose every write is an entry in each of their indexes.
func scheduleChecks(ctx context.Context, tx pgx.Tx, ids []string, after time.Duration) error {
	if _, err := tx.Exec(ctx, `INSERT INTO payout_checks (disbursement_id, check_at)
		SELECT id, now() + $2::bigint * interval '1 millisecond' FROM unnest($1::text[]) AS id ORDER BY id
		ON CONFLICT (disbursement_id) DO UPDATE SET check_at = excluded.check_at, checks = 0`,
		ids, after.Milliseconds()); err != nil {
		return fmt.Errorf("schedule checks: %w", err)
	}
	return nil
}

// TakeDue takes up to limit PROCESSING payouts whose check is due, most
// overdue first, and pushes each one's next check back as it takes it:
// base doubling per check up to maxGap. So every due payout is reached in
// turn however many stay unresolved, and two reconcilers never take the
// same payout at once (rows locked by another are skipped). A due check of
// a payout no longer PROCESSING (settled by its statement, cancelled) is
// dropped on the way.
func (s *Store) TakeDue(ctx context.Context, limit int, base, maxGap time.Duration) ([]Due, error) {
	rows, err := s.db.Query(ctx, `WITH due AS (
			SELECT c.disbursement_id AS id, d.status = 'PROCESSING' AS open
			FROM payout_checks c JOIN disbursements d ON d.id = c.disbursement_id
			WHERE c.check_at <= now()
			ORDER BY c.check_at LIMIT $1 FOR UPDATE OF c SKIP LOCKED),
		gone AS (
			DELETE FROM payout_checks c USING due WHERE c.disbursement_id = due.id AND NOT due.open)
		UPDATE payout_checks c SET checks = c.checks + 1,
			check_at = now() + least($3::bigint, $2::bigint * power(2, least(c.checks, 20))::bigint) * interval '1 millisecond'
		FROM due, disbursements d WHERE c.disbursement_id = due.id AND due.open AND d.id = due.id
		RETURNING d.id, d.bank_code, c.checks, EXISTS (SELECT 1 FROM bank_calls b
			WHERE b.disbursement_id = d.id AND b.kind = 'transfer' AND b.outcome NOT IN ('not_sent', 'not_received'))`,
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
