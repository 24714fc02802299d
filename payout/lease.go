package payout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLeaseLost: the caller's lease on the payout ran out or was taken over,
// so it must not call the bank about it.
var ErrLeaseLost = errors.New("payout: dispatch lease lost")

// ClaimLease makes owner the only one working on the payout at the dispatch
// stage until ttl passes or ReleaseLease. Leases are short: the holder's
// process (instance) renews all of its leases with RenewLeases while it
// works, so a process that dies loses them within ttl. It returns false,
// and when the current lease ends, when someone else holds a live lease.
func (s *Store) ClaimLease(ctx context.Context, disbursementID, owner, instance string, ttl time.Duration) (bool, time.Time, error) {
	var got string
	var until time.Time
	err := s.db.QueryRow(ctx, `INSERT INTO dispatch_leases (disbursement_id, owner, instance, expires_at)
		VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
		ON CONFLICT (disbursement_id) DO UPDATE SET owner = excluded.owner, instance = excluded.instance, expires_at = excluded.expires_at
			WHERE dispatch_leases.expires_at < now() OR dispatch_leases.owner = excluded.owner
		RETURNING owner, expires_at`, disbursementID, owner, instance, ttl.Milliseconds()).Scan(&got, &until)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.db.QueryRow(ctx, `SELECT expires_at FROM dispatch_leases WHERE disbursement_id = $1`, disbursementID).Scan(&until)
		if errors.Is(err, pgx.ErrNoRows) { // released in between: try again later
			return false, time.Now(), nil
		}
		return false, until, err
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("claim lease: %w", err)
	}
	return true, until, nil
}

// RenewLeases extends every live lease of the instance by ttl from now: the
// heartbeat of a dispatch process. It returns how many it renewed.
func (s *Store) RenewLeases(ctx context.Context, instance string, ttl time.Duration) (int64, error) {
	// SKIP LOCKED: a lease row locked now is being released by a settle
	// group, and the heartbeat must never wait on one or deadlock with it.
	tag, err := s.db.Exec(ctx, `UPDATE dispatch_leases SET expires_at = now() + $2::bigint * interval '1 millisecond'
		WHERE disbursement_id IN (SELECT disbursement_id FROM dispatch_leases
			WHERE instance = $1 AND expires_at > now() FOR UPDATE SKIP LOCKED)`, instance, ttl.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("renew leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ReleaseLease ends owner's lease on the payout.
func (s *Store) ReleaseLease(ctx context.Context, disbursementID, owner string) error {
	_, err := s.db.Exec(ctx, `DELETE FROM dispatch_leases WHERE disbursement_id = $1 AND owner = $2`, disbursementID, owner)
	return err
}

// Unresolved is a payout whose transfer may have reached the bank but whose
// outcome is still unknown.
type Unresolved struct {
	ID          string    `json:"id"`
	MerchantID  string    `json:"merchant_id"`
	Environment string    `json:"environment"`
	BankCode    string    `json:"bank_code"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	SentAt      time.Time `json:"sent_at"`
	LastOutcome string    `json:"last_outcome"`
}

// maybeSentBefore selects PROCESSING payouts with a transfer call that may
// have reached the bank, the first of which started before $1.
const maybeSentBefore = `FROM disbursements d JOIN LATERAL (
		SELECT min(c.started_at) AS sent_at, (array_agg(c.outcome ORDER BY c.id DESC))[1] AS last_outcome
		FROM bank_calls c
		WHERE c.disbursement_id = d.id AND c.kind = 'transfer' AND c.outcome NOT IN ('not_sent', 'not_received')
	) c ON c.sent_at IS NOT NULL
	WHERE d.status = 'PROCESSING' AND c.sent_at < $1`

// ListUnresolved lists payouts whose outcome has been unknown since before
// sentBefore, oldest first: what operators must look at.
func (s *Store) ListUnresolved(ctx context.Context, sentBefore time.Time, limit int) ([]Unresolved, error) {
	rows, err := s.db.Query(ctx, `SELECT d.id, d.merchant_id, d.environment, d.bank_code, d.amount, d.currency, c.sent_at, c.last_outcome `+
		maybeSentBefore+` ORDER BY c.sent_at LIMIT $2`, sentBefore, limit)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Unresolved, error) {
		var u Unresolved
		err := r.Scan(&u.ID, &u.MerchantID, &u.Environment, &u.BankCode, &u.Amount, &u.Currency, &u.SentAt, &u.LastOutcome)
		return u, err
	})
	if out == nil {
		out = []Unresolved{}
	}
	return out, err
}

// CountUnresolved counts what ListUnresolved lists.
func (s *Store) CountUnresolved(ctx context.Context, sentBefore time.Time) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) `+maybeSentBefore, sentBefore).Scan(&n)
	return n, err
}
