package hold

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

// Kinds of held subject.
const (
	KindPayout = "payout"
	KindBatch  = "batch"
)

// Approval statuses of a hold.
const (
	ApprovalNone      = "NONE"
	ApprovalPending   = "PENDING"
	ApprovalApproved  = "APPROVED"
	ApprovalRejected  = "REJECTED"
	ApprovalExpired   = "EXPIRED"
	ApprovalCancelled = "CANCELLED"
)

// Failure codes of held payouts that never ran.
const (
	FailureRejected = "APPROVAL_REJECTED"
	FailureExpired  = "APPROVAL_EXPIRED"
)

// MaxAhead is how far ahead a payout or batch may be scheduled.
const MaxAhead = 30 * 24 * time.Hour

var (
	// ErrNotFound: no such held subject in the environment.
	ErrNotFound = errors.New("hold: not found")
	// ErrDecided: the approval was already decided (or none was needed).
	ErrDecided = errors.New("hold: not awaiting approval")
	// ErrExpired: the approval expired before the decision.
	ErrExpired = errors.New("hold: approval expired")
	// ErrSameActor: the maker may not check its own payout.
	ErrSameActor = errors.New("hold: the creator may not decide")
)

// Policy is an environment's maker-checker policy; a zero threshold never
// asks for approval.
type Policy struct {
	PayoutAmount int64 `json:"payout_amount"`
	BatchAmount  int64 `json:"batch_amount"`
	BatchItems   int   `json:"batch_items"`
	// ExpiresAfter is how long an approval may wait, in seconds (60 to 30 days).
	ExpiresAfter int `json:"expires_after_seconds"`
}

// DefaultExpiresAfter is the approval time of a policy that sets none.
const DefaultExpiresAfter = 24 * 60 * 60

// PayoutNeeds reports whether a single payout of amount waits for approval.
func (p Policy) PayoutNeeds(amount int64) bool { return p.PayoutAmount > 0 && amount >= p.PayoutAmount }

// BatchNeeds reports whether a batch of items totalling amount waits.
func (p Policy) BatchNeeds(items int, amount int64) bool {
	return (p.BatchAmount > 0 && amount >= p.BatchAmount) || (p.BatchItems > 0 && items >= p.BatchItems)
}

// Hold is a held payout or batch as the API shows it.
type Hold struct {
	ID             string     `json:"id"`
	Kind           string     `json:"kind"`
	ItemCount      int        `json:"item_count"`
	TotalAmount    int64      `json:"total_amount"`
	ApprovalStatus string     `json:"approval_status"`
	CreatedBy      string     `json:"created_by"`
	DecidedBy      *string    `json:"decided_by"`
	DecidedAt      *time.Time `json:"decided_at"`
	DecisionNote   string     `json:"decision_note"`
	ExpiresAt      *time.Time `json:"expires_at"`
	ScheduledAt    *time.Time `json:"scheduled_at"`
	ReleasedAt     *time.Time `json:"released_at"`
	CreatedAt      time.Time  `json:"created_at"`
	MerchantID     string     `json:"-"`
	Environment    string     `json:"-"`
}

const holdColumns = `id, kind, item_count, total_amount, approval_status, created_by, decided_by, decided_at, decision_note,
	expires_at, scheduled_at, released_at, created_at, merchant_id, environment`

func scanHold(row pgx.Row) (Hold, error) {
	var h Hold
	err := row.Scan(&h.ID, &h.Kind, &h.ItemCount, &h.TotalAmount, &h.ApprovalStatus, &h.CreatedBy, &h.DecidedBy, &h.DecidedAt,
		&h.DecisionNote, &h.ExpiresAt, &h.ScheduledAt, &h.ReleasedAt, &h.CreatedAt, &h.MerchantID, &h.Environment)
	return h, err
}

// Store keeps holds and approval policies in Postgres.
type Store struct{ db *pgxpool.Pool }

// NewStore returns a store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Policy reads an environment's approval policy (the zero policy when none).
func (s *Store) Policy(ctx context.Context, merchantID, environment string) (Policy, error) {
	p := Policy{ExpiresAfter: DefaultExpiresAfter}
	err := s.db.QueryRow(ctx, `SELECT payout_amount, batch_amount, batch_items, expires_after FROM approval_policies
		WHERE merchant_id = $1 AND environment = $2`, merchantID, environment).Scan(&p.PayoutAmount, &p.BatchAmount, &p.BatchItems, &p.ExpiresAfter)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Policy{}, fmt.Errorf("read approval policy: %w", err)
	}
	return p, nil
}

// SetPolicy stores an environment's approval policy (checked by the
// caller), set by actor, and writes the change to the settings audit log
// in the same transaction.
func (s *Store) SetPolicy(ctx context.Context, merchantID, environment, actor string, p Policy, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		old := Policy{ExpiresAfter: DefaultExpiresAfter}
		err := tx.QueryRow(ctx, `SELECT payout_amount, batch_amount, batch_items, expires_after FROM approval_policies
			WHERE merchant_id = $1 AND environment = $2 FOR UPDATE`, merchantID, environment).Scan(&old.PayoutAmount, &old.BatchAmount, &old.BatchItems, &old.ExpiresAfter)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO approval_policies (merchant_id, environment, payout_amount, batch_amount, batch_items, expires_after)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (merchant_id, environment) DO UPDATE SET payout_amount = $3, batch_amount = $4, batch_items = $5,
				expires_after = $6, updated_at = now()`, merchantID, environment, p.PayoutAmount, p.BatchAmount, p.BatchItems, p.ExpiresAfter); err != nil {
			return err
		}
		return merchant.WriteAudit(ctx, tx, now, merchantID, environment, actor, "approval_policy", old, p)
	})
	if err != nil {
		return fmt.Errorf("set approval policy: %w", err)
	}
	return nil
}

// Spec is what a new held subject waits for.
type Spec struct {
	Approval    bool
	ExpiresAt   time.Time  // with Approval
	ScheduledAt *time.Time // nil: at once when approved
	CreatedBy   string     // the maker's key id
}

// Held reports whether s holds anything.
func (s Spec) Held() bool { return s.Approval || s.ScheduledAt != nil }

// Place moves a new subject's PENDING payouts (ids) to their hold inside
// the creating transaction tx and records the hold.
func Place(ctx context.Context, tx pgx.Tx, kind, id, merchantID, environment string, ids []string, total int64, spec Spec) ([]payout.Disbursement, error) {
	to, approval := payout.Scheduled, ApprovalNone
	var expires *time.Time
	if spec.Approval {
		to, approval = payout.AwaitingApproval, ApprovalPending
		e := spec.ExpiresAt.UTC()
		expires = &e
	}
	moves := make([]payout.Move, len(ids))
	for i, pid := range ids {
		moves[i] = payout.Move{ID: pid, To: to}
	}
	moved, err := payout.MoveAll(ctx, tx, payout.Pending, moves)
	if err != nil {
		return nil, err
	}
	if len(moved) != len(ids) {
		return nil, fmt.Errorf("hold: %d of %d new payouts were not PENDING", len(ids)-len(moved), len(ids))
	}
	_, err = tx.Exec(ctx, `INSERT INTO holds (id, kind, merchant_id, environment, item_count, total_amount, approval_status,
			created_by, expires_at, scheduled_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		id, kind, merchantID, environment, len(ids), total, approval, spec.CreatedBy, expires, spec.ScheduledAt)
	if err != nil {
		return nil, fmt.Errorf("record hold: %w", err)
	}
	return moved, nil
}

// Get reads a hold of the environment.
func (s *Store) Get(ctx context.Context, merchantID, environment, id string) (Hold, error) {
	h, err := scanHold(s.db.QueryRow(ctx, `SELECT `+holdColumns+` FROM holds WHERE id = $1 AND merchant_id = $2 AND environment = $3`,
		id, merchantID, environment))
	if errors.Is(err, pgx.ErrNoRows) {
		return Hold{}, ErrNotFound
	}
	return h, err
}

// Queue lists the environment's holds awaiting approval (approvalStatus
// "PENDING") or of another approval status, newest first, after the
// cursor (a hold id), at most limit.
func (s *Store) Queue(ctx context.Context, merchantID, environment, approvalStatus, after string, limit int) ([]Hold, error) {
	rows, err := s.db.Query(ctx, `SELECT `+holdColumns+` FROM holds
		WHERE merchant_id = $1 AND environment = $2 AND approval_status = $3
		  AND ($4 = '' OR (created_at, id) < (SELECT created_at, id FROM holds WHERE id = $4))
		ORDER BY created_at DESC, id DESC LIMIT $5`, merchantID, environment, approvalStatus, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Hold, error) { return scanHold(r) })
}

// heldIDs are the subject's payouts still in status st.
func heldIDs(ctx context.Context, tx pgx.Tx, h Hold, st payout.Status) ([]string, error) {
	if h.Kind == KindPayout {
		return []string{h.ID}, nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM disbursements WHERE batch_id = $1 AND status = $2 ORDER BY id`, h.ID, string(st))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// move locks the subject's payouts in status from and moves them to to.
func move(ctx context.Context, tx pgx.Tx, h Hold, from, to payout.Status, code string) ([]payout.Disbursement, error) {
	ids, err := heldIDs(ctx, tx, h, from)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	if _, err := payout.Locked(ctx, tx, ids); err != nil {
		return nil, err
	}
	moves := make([]payout.Move, len(ids))
	for i, id := range ids {
		moves[i] = payout.Move{ID: id, To: to, FailureCode: code}
	}
	return payout.MoveAll(ctx, tx, from, moves)
}

// Requests are the request records of payouts that became PENDING.
func Requests(ds []payout.Disbursement, at time.Time) []events.Request {
	out := make([]events.Request, 0, len(ds))
	for _, d := range ds {
		if d.Status != payout.Pending {
			continue
		}
		r := events.Request{DisbursementID: d.ID, MerchantID: d.MerchantID, Environment: d.Environment, ReferenceID: d.ReferenceID,
			BankCode: d.BankCode, Amount: d.Amount, Currency: d.Currency, AcceptedAt: at.UTC()}
		if d.BatchID != nil {
			r.BatchID = *d.BatchID
		}
		out = append(out, r)
	}
	return out
}

// Decide approves or rejects a subject awaiting approval, by the checker
// by (a key id, or a dashboard user). An approved subject's payouts become
// PENDING (returned, to publish), or SCHEDULED when their time is still
// ahead; a rejected one's FAIL with APPROVAL_REJECTED. A decision after
// the expiry expires the subject instead (ErrExpired). Payouts cancelled
// meanwhile stay cancelled: the locks make approve and cancel take turns.
func (s *Store) Decide(ctx context.Context, merchantID, environment, kind, id, by string, approve bool, note string, now time.Time) (Hold, []payout.Disbursement, error) {
	var h Hold
	var released []payout.Disbursement
	var outcome error
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		released, outcome = nil, nil
		var err error
		h, err = scanHold(tx.QueryRow(ctx, `SELECT `+holdColumns+` FROM holds
			WHERE id = $1 AND kind = $2 AND merchant_id = $3 AND environment = $4 FOR UPDATE`, id, kind, merchantID, environment))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case h.ApprovalStatus != ApprovalPending:
			outcome = ErrDecided
			return nil
		case h.ExpiresAt != nil && !now.Before(*h.ExpiresAt):
			outcome = ErrExpired
			return expire(ctx, tx, &h, now)
		case by == h.CreatedBy:
			outcome = ErrSameActor
			return nil
		}
		to, status, code := payout.Failed, ApprovalRejected, FailureRejected
		if approve {
			to, status, code = payout.Pending, ApprovalApproved, ""
			if h.ScheduledAt != nil && h.ScheduledAt.After(now) {
				to = payout.Scheduled
			}
		}
		moved, err := move(ctx, tx, h, payout.AwaitingApproval, to, code)
		if err != nil {
			return err
		}
		at := now.UTC()
		h.ApprovalStatus, h.DecidedBy, h.DecidedAt, h.DecisionNote = status, &by, &at, note
		var releasedAt *time.Time
		if to == payout.Pending {
			releasedAt = &at
			h.ReleasedAt = releasedAt
			released = moved
		}
		_, err = tx.Exec(ctx, `UPDATE holds SET approval_status = $2, decided_by = $3, decided_at = $4, decision_note = $5,
			released_at = coalesce($6, released_at) WHERE id = $1`, id, status, by, at, note, releasedAt)
		return err
	})
	if err != nil {
		return Hold{}, nil, fmt.Errorf("decide %s %s: %w", kind, id, err)
	}
	return h, released, outcome
}

// expire fails the subject's payouts awaiting approval (APPROVAL_EXPIRED).
func expire(ctx context.Context, tx pgx.Tx, h *Hold, now time.Time) error {
	if _, err := move(ctx, tx, *h, payout.AwaitingApproval, payout.Failed, FailureExpired); err != nil {
		return err
	}
	h.ApprovalStatus = ApprovalExpired
	_, err := tx.Exec(ctx, `UPDATE holds SET approval_status = 'EXPIRED', decided_at = $2 WHERE id = $1`, h.ID, now.UTC())
	return err
}

// Cancel cancels the environment's held payouts among ids (AWAITING_APPROVAL
// or SCHEDULED), in the caller's order of locks, and closes the holds left
// with nothing held. Payouts not held are left for the ledger's cancel.
func (s *Store) Cancel(ctx context.Context, merchantID, environment string, ids []string) ([]payout.Disbursement, error) {
	var done []payout.Disbursement
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		done = nil
		// Locks in the order Decide and the worker take them: the holds
		// first, then the payouts.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM holds WHERE id IN (
				SELECT coalesce(batch_id, id) FROM disbursements WHERE id = ANY($1) AND merchant_id = $2 AND environment = $3)
			ORDER BY id FOR UPDATE`, ids, merchantID, environment); err != nil {
			return err
		}
		byID, err := payout.Locked(ctx, tx, ids)
		if err != nil {
			return err
		}
		groups := map[payout.Status][]payout.Move{}
		subjects := map[string]bool{}
		for _, id := range ids {
			d, ok := byID[id]
			if !ok || d.MerchantID != merchantID || d.Environment != environment ||
				(d.Status != payout.AwaitingApproval && d.Status != payout.Scheduled) {
				continue
			}
			groups[d.Status] = append(groups[d.Status], payout.Move{ID: id, To: payout.Cancelled})
			delete(byID, id) // once
			if d.BatchID != nil {
				subjects[*d.BatchID] = true
			} else {
				subjects[d.ID] = true
			}
		}
		for _, from := range []payout.Status{payout.AwaitingApproval, payout.Scheduled} {
			moved, err := payout.MoveAll(ctx, tx, from, groups[from])
			if err != nil {
				return err
			}
			done = append(done, moved...)
		}
		if len(subjects) == 0 {
			return nil
		}
		list := make([]string, 0, len(subjects))
		for id := range subjects {
			list = append(list, id)
		}
		_, err = tx.Exec(ctx, `UPDATE holds h SET approval_status = CASE WHEN approval_status = 'PENDING' THEN 'CANCELLED' ELSE approval_status END,
				released_at = coalesce(released_at, now())
			WHERE h.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM disbursements d
				WHERE (d.id = h.id OR d.batch_id = h.id) AND d.status IN ('AWAITING_APPROVAL', 'SCHEDULED'))`, list)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cancel held payouts: %w", err)
	}
	return done, nil
}

// CancelBatch cancels a batch's held items (see Cancel) and returns how
// many it cancelled.
func (s *Store) CancelBatch(ctx context.Context, merchantID, environment, batchID string) (int, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM disbursements WHERE batch_id = $1 AND merchant_id = $2 AND environment = $3
		AND status IN ('AWAITING_APPROVAL', 'SCHEDULED') ORDER BY id`, batchID, merchantID, environment)
	if err != nil {
		return 0, fmt.Errorf("held batch items: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	done, err := s.Cancel(ctx, merchantID, environment, ids)
	return len(done), err
}
