package payout

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// Move is one payout's change of status, as the caller decided it.
type Move struct {
	ID          string
	To          Status
	FailureCode string // when To is FAILED
	// Set by the debit (a move from PENDING; ignored when FundedBy is
	// empty, as for a cancel): the fee charged and the account that paid.
	Fee      int64
	FundedBy string
}

// allowed are the transitions of the state machine (API.md): anything else
// is a bug in the caller.
var allowed = map[Status][]Status{
	Pending:    {Processing, Failed, Cancelled, AwaitingApproval, Scheduled},
	Processing: {Completed, Failed, Cancelled},
	Completed:  {Reversed},

	// A held payout (issue 14) is created PENDING and moved to its hold in
	// the same transaction; it leaves it for PENDING (approved, due), for
	// SCHEDULED (approved, not yet due), or ends without a debit.
	AwaitingApproval: {Pending, Scheduled, Failed, Cancelled},
	Scheduled:        {Pending, Failed, Cancelled},
}

func canMove(from, to Status) bool {
	for _, s := range allowed[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Locked reads the payouts with the given ids and locks them FOR UPDATE,
// in id order (the first lock every money movement takes), inside tx.
// Unknown ids are left out.
func Locked(ctx context.Context, tx pgx.Tx, ids []string) (map[string]Disbursement, error) {
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM disbursements WHERE id = ANY($1) ORDER BY id FOR UPDATE`, sorted)
	if err != nil {
		return nil, fmt.Errorf("lock payouts: %w", err)
	}
	out := make(map[string]Disbursement, len(ids))
	for rows.Next() {
		d, err := scan(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out[d.ID] = d
	}
	return out, rows.Err()
}

// MoveAll moves a set of payouts that are in status from, inside the
// caller's transaction: it changes each payout's status (and version,
// times, failure code, and at the debit its fee and funding), writes one
// payout_events row per change, and keeps the progress of their batches,
// once per batch for the whole set. It is the only way a payout's status
// changes. A payout no longer in from is left alone and not returned, so a
// caller that locked the payouts first (Locked) gets every move it asked for
// and can check it. It returns the payouts as moved.
//
// Cost: three statements whatever the set's size (two without batches).
func MoveAll(ctx context.Context, tx pgx.Tx, from Status, moves []Move) ([]Disbursement, error) {
	out, p, err := MoveSet(ctx, tx, from, moves)
	if err != nil {
		return nil, err
	}
	return out, p.Apply(ctx, tx)
}

// Progress is what a set of moves changes in its batches' counts, kept
// for the end of the transaction: a batch's row is shared by every set of
// its items (the debit of one polled batch, the settle groups of its
// outcomes), so it is locked last, for the shortest time, as a merchant's
// account rows are (see ledger).
type Progress struct {
	from  Status
	moved []Disbursement
}

// MoveSet is MoveAll without the batch progress: the caller applies the
// Progress it returns, in the same transaction, after its own writes.
func MoveSet(ctx context.Context, tx pgx.Tx, from Status, moves []Move) ([]Disbursement, Progress, error) {
	if len(moves) == 0 {
		return nil, Progress{}, nil
	}
	ids := make([]string, len(moves))
	to := make([]string, len(moves))
	failure := make([]string, len(moves))
	fee := make([]int64, len(moves))
	funded := make([]string, len(moves))
	for i, m := range moves {
		if !canMove(from, m.To) {
			return nil, Progress{}, fmt.Errorf("payout %s: no transition %s -> %s", m.ID, from, m.To)
		}
		ids[i], to[i], failure[i], fee[i], funded[i] = m.ID, string(m.To), m.FailureCode, m.Fee, m.FundedBy
	}
	rows, err := tx.Query(ctx, `WITH changed AS (
			UPDATE disbursements d SET status = u.status, failure_code = u.failure,
				fee = CASE WHEN d.status = 'PENDING' AND u.funded <> '' THEN u.fee ELSE d.fee END,
				funded_by = CASE WHEN d.status = 'PENDING' AND u.funded <> '' THEN u.funded ELSE d.funded_by END,
				debited_at = CASE WHEN u.status = 'PROCESSING' THEN now() ELSE d.debited_at END,
				completed_at = CASE WHEN u.status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN now() ELSE d.completed_at END,
				version = d.version + 1, updated_at = now()
			FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u(id, status, failure, fee, funded)
			WHERE d.id = u.id AND d.status = $1
			RETURNING d.*), `+recordEvents+`
		SELECT `+columns+` FROM changed`, string(from), ids, to, failure, fee, funded)
	if err != nil {
		return nil, Progress{}, fmt.Errorf("move payouts %s: %w", from, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Disbursement, error) { return scan(r) })
	if err != nil {
		return nil, Progress{}, fmt.Errorf("move payouts %s: %w", from, err)
	}
	return out, Progress{from: from, moved: out}, nil
}

// Apply writes the progress to the batches' counts and rows.
func (p Progress) Apply(ctx context.Context, tx pgx.Tx) error {
	return batchProgress(ctx, tx, p.from, p.moved)
}

// batchProgress applies a set's moves to its batches' counts: one upsert of
// the count rows and one update of the batch rows, in a fixed order so two
// sets of one batch cannot deadlock. The payouts moved out of from had no
// failure code (only FAILED ones carry one, and FAILED is terminal).
func batchProgress(ctx context.Context, tx pgx.Tx, from Status, moved []Disbursement) error {
	type countKey struct{ batch, status, failure string }
	counts := map[countKey][2]int64{}
	ended := map[string]int64{} // batch -> items that reached a terminal status
	touched := map[string]bool{}
	for _, d := range moved {
		if d.BatchID == nil {
			continue
		}
		b := *d.BatchID
		old := counts[countKey{b, string(from), ""}]
		counts[countKey{b, string(from), ""}] = [2]int64{old[0] - 1, old[1] - d.Amount}
		fc := ""
		if d.FailureCode != nil {
			fc = *d.FailureCode
		}
		nw := counts[countKey{b, string(d.Status), fc}]
		counts[countKey{b, string(d.Status), fc}] = [2]int64{nw[0] + 1, nw[1] + d.Amount}
		if from == Pending || from == Processing || from == AwaitingApproval || from == Scheduled {
			touched[b] = true
			if d.Status == Completed || d.Status == Failed || d.Status == Cancelled {
				ended[b]++
			}
		}
	}
	if len(counts) == 0 {
		return nil
	}
	keys := make([]countKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.batch != b.batch {
			return a.batch < b.batch
		}
		if a.status != b.status {
			return a.status < b.status
		}
		return a.failure < b.failure
	})
	var kb, ks, kf []string
	var kn, ka []int64
	for _, k := range keys {
		kb, ks, kf = append(kb, k.batch), append(ks, k.status), append(kf, k.failure)
		kn, ka = append(kn, counts[k][0]), append(ka, counts[k][1])
	}
	if _, err := tx.Exec(ctx, `INSERT INTO batch_counts AS c (batch_id, status, failure_code, count, amount)
		SELECT b, s, f, n, a FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS u(b, s, f, n, a, o)
		ORDER BY o
		ON CONFLICT (batch_id, status, failure_code)
		DO UPDATE SET count = c.count + excluded.count, amount = c.amount + excluded.amount`,
		kb, ks, kf, kn, ka); err != nil {
		return fmt.Errorf("batch counts: %w", err)
	}
	if len(touched) == 0 {
		return nil
	}
	batches := make([]string, 0, len(touched))
	for b := range touched {
		batches = append(batches, b)
	}
	sort.Strings(batches)
	n := make([]int64, len(batches))
	for i, b := range batches {
		n[i] = ended[b]
	}
	if _, err := tx.Exec(ctx, `UPDATE batches b SET terminal_count = b.terminal_count + u.n,
			status = CASE WHEN b.terminal_count + u.n >= b.item_count THEN 'COMPLETED' ELSE 'PROCESSING' END,
			completed_at = CASE WHEN b.terminal_count + u.n >= b.item_count THEN coalesce(b.completed_at, now()) END,
			updated_at = now()
		FROM unnest($1::text[], $2::bigint[]) AS u(id, n) WHERE b.id = u.id`, batches, n); err != nil {
		return fmt.Errorf("batch progress: %w", err)
	}
	return nil
}
