package payout

import (
	"context"
	"errors"
	"fmt"
	"sort"
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

// releaseLeases deletes owners[i]'s lease on ids[i], whoever else holds
// a lease on the same payout keeping theirs.
const releaseLeases = `DELETE FROM dispatch_leases l USING unnest($1::text[], $2::text[]) AS u(id, owner)
	WHERE l.disbursement_id = u.id AND l.owner = u.owner`

// ReleaseLeases ends owners[i]'s lease on ids[i], in one statement, and
// returns how many there were; a lease that is not there is no error.
func (s *Store) ReleaseLeases(ctx context.Context, ids, owners []string) (int64, error) {
	if len(ids) != len(owners) {
		return 0, fmt.Errorf("release leases: %d ids but %d owners", len(ids), len(owners))
	}
	tag, err := s.db.Exec(ctx, releaseLeases, ids, owners)
	if err != nil {
		return 0, fmt.Errorf("release leases: %w", err)
	}
	return tag.RowsAffected(), nil
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
// have reached the bank, the first of which started before $1. It starts
// from payout_checks, which holds a row for every payout whose transfer call
// was recorded and that has not been settled through its claim: a few
// thousand rows at most, where the PROCESSING payouts of a bulk batch
// waiting for their lanes can be 100,000 (the scan from disbursements took
// half a second per call in a 20,000-item run).
//
// OFFSET 0 keeps the planner from flattening the subqueries: statistics
// taken mid-batch can say there are few PROCESSING payouts when there are
// 100,000, and a plan driven from disbursements then costs seconds (as
// does filtering the status inside the probe: it would pick the status
// index). This way the scan is one primary-key probe per payout_checks row.
const maybeSentBefore = `FROM (SELECT disbursement_id FROM payout_checks OFFSET 0) pc
	JOIN LATERAL (SELECT * FROM disbursements d WHERE d.id = pc.disbursement_id OFFSET 0) d ON d.status = 'PROCESSING'
	JOIN LATERAL (
		SELECT min(c.started_at) AS sent_at, (array_agg(c.outcome ORDER BY c.id DESC))[1] AS last_outcome
		FROM bank_calls c
		WHERE c.disbursement_id = d.id AND c.kind = 'transfer' AND c.outcome NOT IN ('not_sent', 'not_received')
	) c ON c.sent_at IS NOT NULL
	WHERE c.sent_at < $1`

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

// Claim is a payout a dispatch worker holds the lease of.
type Claim struct {
	Disbursement
	Owner string
	// CallID is the transfer call recorded with the claim, to be made
	// under it; 0 when a transfer of the payout may already be at the bank,
	// and the worker must ask the bank before anything else.
	CallID int64
}

// Claims is what ClaimSet found for a set of payouts.
type Claims struct {
	Claimed []Claim
	// Leased: someone else holds a live lease; it ends at the time given.
	Leased map[string]time.Time
	// Settled: not PROCESSING (already settled, or never debited): nothing
	// for dispatch to do. Unknown ids are here too, as "".
	Settled map[string]Status
}

// ClaimSet claims the dispatch leases of a set of payouts for owner (a
// name unique to this claim) on behalf of instance (the process whose
// heartbeat renews them), and records the transfer call of each claimed
// payout that no transfer may have reached the bank for yet, all in one
// transaction: one commit for the whole set.
//
// A payout whose transfer call is recorded gets its first reconciler check
// scheduled checkAfter from now (see StartTransfer).
func (s *Store) ClaimSet(ctx context.Context, ids []string, owner, instance string, ttl, checkAfter time.Duration) (Claims, error) {
	out := Claims{Leased: map[string]time.Time{}, Settled: map[string]Status{}}
	if len(ids) == 0 {
		return out, nil
	}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		out = Claims{Leased: map[string]time.Time{}, Settled: map[string]Status{}}
		// FOR SHARE: a cancel (which locks the payout FOR UPDATE) and a claim
		// of the same payout serialise, so a payout is never both cancelled
		// and handed to its bank.
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM disbursements WHERE id = ANY($1) ORDER BY id FOR SHARE`, sorted)
		if err != nil {
			return fmt.Errorf("read payouts: %w", err)
		}
		byID, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Disbursement, error) { return scan(r) })
		if err != nil {
			return fmt.Errorf("read payouts: %w", err)
		}
		found := map[string]Disbursement{}
		var processing []string
		for _, d := range byID {
			found[d.ID] = d
		}
		for _, id := range sorted {
			d, ok := found[id]
			switch {
			case !ok:
				out.Settled[id] = ""
			case d.Status != Processing:
				out.Settled[id] = d.Status
			default:
				processing = append(processing, id)
			}
		}
		if len(processing) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `INSERT INTO dispatch_leases (disbursement_id, owner, instance, expires_at)
			SELECT id, $2, $3, now() + $4::bigint * interval '1 millisecond' FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) ORDER BY n
			ON CONFLICT (disbursement_id) DO UPDATE SET owner = excluded.owner, instance = excluded.instance, expires_at = excluded.expires_at
				WHERE dispatch_leases.expires_at < now()
			RETURNING disbursement_id`, processing, owner, instance, ttl.Milliseconds())
		if err != nil {
			return fmt.Errorf("claim leases: %w", err)
		}
		claimed, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("claim leases: %w", err)
		}
		got := map[string]bool{}
		for _, id := range claimed {
			got[id] = true
		}
		var busy []string
		for _, id := range processing {
			if !got[id] {
				busy = append(busy, id)
			}
		}
		if len(busy) > 0 {
			rows, err = tx.Query(ctx, `SELECT disbursement_id, expires_at FROM dispatch_leases WHERE disbursement_id = ANY($1)`, busy)
			if err != nil {
				return fmt.Errorf("read leases: %w", err)
			}
			for rows.Next() {
				var id string
				var until time.Time
				if err := rows.Scan(&id, &until); err != nil {
					rows.Close()
					return err
				}
				out.Leased[id] = until
			}
			if err := rows.Err(); err != nil {
				return err
			}
			for _, id := range busy {
				if _, ok := out.Leased[id]; !ok { // released in between: try again soon
					out.Leased[id] = time.Now()
				}
			}
		}
		if len(claimed) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `SELECT DISTINCT disbursement_id FROM bank_calls
			WHERE disbursement_id = ANY($1) AND kind = 'transfer' AND outcome NOT IN ('not_sent', 'not_received')`, claimed)
		if err != nil {
			return fmt.Errorf("read bank calls: %w", err)
		}
		sent, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("read bank calls: %w", err)
		}
		maybeSent := map[string]bool{}
		for _, id := range sent {
			maybeSent[id] = true
		}
		var toCall []string
		for _, id := range claimed {
			if !maybeSent[id] {
				toCall = append(toCall, id)
			}
		}
		calls := map[string]int64{}
		if len(toCall) > 0 {
			rows, err = tx.Query(ctx, `INSERT INTO bank_calls (disbursement_id, kind)
				SELECT id, 'transfer' FROM unnest($1::text[]) AS id RETURNING id, disbursement_id`, toCall)
			if err != nil {
				return fmt.Errorf("record bank calls: %w", err)
			}
			for rows.Next() {
				var cid int64
				var did string
				if err := rows.Scan(&cid, &did); err != nil {
					rows.Close()
					return err
				}
				calls[did] = cid
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("record bank calls: %w", err)
			}
			if err := scheduleChecks(ctx, tx, toCall, checkAfter); err != nil {
				return err
			}
		}
		for _, id := range claimed {
			out.Claimed = append(out.Claimed, Claim{Disbursement: found[id], Owner: owner, CallID: calls[id]})
		}
		return nil
	})
	return out, err
}

// EndClaims ends a settled group's claims inside the settling transaction:
// each recorded transfer call answered, each lease released.
func EndClaims(ctx context.Context, tx pgx.Tx, claims []Claim) error {
	if len(claims) == 0 {
		return nil
	}
	var calls []int64
	ids := make([]string, len(claims))
	owners := make([]string, len(claims))
	for i, c := range claims {
		ids[i], owners[i] = c.ID, c.Owner
		if c.CallID != 0 {
			calls = append(calls, c.CallID)
		}
	}
	if len(calls) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE bank_calls SET outcome = 'answered', finished_at = now()
			WHERE id = ANY($1) AND outcome = 'started'`, calls); err != nil {
			return fmt.Errorf("finish bank calls: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, releaseLeases, ids, owners); err != nil {
		return fmt.Errorf("release leases: %w", err)
	}
	// Settled: nothing left for the reconciler to ask the bank about.
	if _, err := tx.Exec(ctx, `DELETE FROM payout_checks WHERE disbursement_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("drop checks: %w", err)
	}
	return nil
}
