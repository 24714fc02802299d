package payout

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Bank call kinds and outcomes, as recorded in bank_calls: the record that
// proves each payout was sent to its bank once.
const (
	CallTransfer = "transfer"
	CallStatus   = "status"

	OutcomeAnswered    = "answered"          // the bank gave a definite answer
	OutcomeNotSent     = "not_sent"          // the bank certainly did not receive it
	OutcomeUnknown     = "unknown"           // timeout or 5xx after sending
	OutcomeNoSuchRef   = "no_such_reference" // a status query: the bank never received it
	OutcomeNotReceived = "not_received"      // a transfer call the bank later said it never received
)

// StartCall records that a call to the bank is about to be made and returns
// its id. The record is fenced by the lease: it is written only while owner
// holds a live lease on the payout (ErrLeaseLost otherwise), so a worker
// whose lease ran out (a long pause, a lost heartbeat) cannot send after a
// new owner took over.
func (s *Store) StartCall(ctx context.Context, disbursementID, kind, owner string) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `INSERT INTO bank_calls (disbursement_id, kind)
		SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM dispatch_leases
			WHERE disbursement_id = $1 AND owner = $3 AND expires_at > now())
		RETURNING id`, disbursementID, kind, owner).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrLeaseLost
	}
	if err != nil {
		return 0, fmt.Errorf("record bank call: %w", err)
	}
	return id, nil
}

// FinishCall records a call's outcome.
func (s *Store) FinishCall(ctx context.Context, callID int64, outcome string) error {
	_, err := s.db.Exec(ctx, `UPDATE bank_calls SET outcome = $2, finished_at = now() WHERE id = $1`, callID, outcome)
	return err
}

// MaybeSent reports whether a transfer for the payout may have reached its
// bank: any transfer call not known to have failed before sending. Such a
// payout is resolved by asking the bank, never by sending again.
func (s *Store) MaybeSent(ctx context.Context, disbursementID string) (bool, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM bank_calls
		WHERE disbursement_id = $1 AND kind = 'transfer' AND outcome NOT IN ('not_sent', 'not_received')`, disbursementID).Scan(&n)
	return n > 0, err
}

// MarkNotReceived records that the bank has no transfer for the payout, so
// earlier transfer calls never reached it and a new send is safe.
func (s *Store) MarkNotReceived(ctx context.Context, disbursementID string) error {
	_, err := s.db.Exec(ctx, `UPDATE bank_calls SET outcome = 'not_received', finished_at = coalesce(finished_at, now())
		WHERE disbursement_id = $1 AND kind = 'transfer' AND outcome NOT IN ('not_sent', 'not_received')`, disbursementID)
	return err
}
