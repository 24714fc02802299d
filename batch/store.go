package batch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/payout"
)

var (
	// ErrNotFound: no such batch in the caller's environment.
	ErrNotFound = errors.New("batch: not found")
	// ErrIdempotencyKeyReused: the batch key was used with a different body.
	ErrIdempotencyKeyReused = errors.New("batch: idempotency key reused with a different body")
)

// ID derives a batch id from (merchant, environment, idempotency key).
func ID(merchantID, environment, idempotencyKey string) string {
	sum := sha256.Sum256([]byte(merchantID + "\x00" + environment + "\x00batch\x00" + idempotencyKey))
	return "bat_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}

// ItemKey is the idempotency key of a batch item: its reference_id. The
// space makes it a key no single-payout request can send.
func ItemKey(referenceID string) string { return "item " + referenceID }

// Duplicate is an item whose reference_id the merchant had already used.
type Duplicate struct {
	Row            int    `json:"row"`
	ReferenceID    string `json:"reference_id"`
	DisbursementID string `json:"disbursement_id"`
	Status         string `json:"status"`
}

// Accepted is the answer to a batch creation, stored for replays.
type Accepted struct {
	ID             string      `json:"id"`
	ReferenceID    string      `json:"reference_id"`
	Mode           string      `json:"mode"`
	Status         string      `json:"status"`
	ItemCount      int         `json:"item_count"`
	TotalAmount    int64       `json:"total_amount"`
	Currency       string      `json:"currency"`
	RejectedCount  int         `json:"rejected_count"`
	Rejected       []RowError  `json:"rejected"`
	DuplicateCount int         `json:"duplicate_count"`
	Duplicates     []Duplicate `json:"duplicates"`
	CreatedAt      time.Time   `json:"created_at"`
}

// Store keeps batches in Postgres.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Create stores the batch and its valid items as PENDING payouts in one
// transaction. Items whose reference_id was used before are not inserted
// and come back as duplicates. On a replay (same key, same body hash) it
// returns the stored answer and replay=true; pending lists the payouts of
// the batch still PENDING, which the caller publishes (again). The request
// id ctx carries (payout.RequestID) is stored on the batch and on each item.
func (s *Store) Create(ctx context.Context, merchantID, environment, idempotencyKey string, hash []byte, p *Parsed) (a Accepted, pending []string, replay bool, err error) {
	return s.CreateHeld(ctx, merchantID, environment, idempotencyKey, hash, p, nil)
}

// Hold moves a new batch's PENDING items (ids) to a hold inside the
// creating transaction (issue 14: awaiting approval, or scheduled).
type Hold func(ctx context.Context, tx pgx.Tx, a Accepted, ids []string) error

// CreateHeld is Create with the new batch's items moved to a hold by hold
// (nil: none) in the same transaction; held items are not returned as
// pending, so the caller publishes nothing, and a replay finds none either.
func (s *Store) CreateHeld(ctx context.Context, merchantID, environment, idempotencyKey string, hash []byte, p *Parsed, hold Hold) (a Accepted, pending []string, replay bool, err error) {
	id := ID(merchantID, environment, idempotencyKey)
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var createdAt time.Time
		rid := payout.RequestID(ctx)
		err := tx.QueryRow(ctx, `INSERT INTO batches (id, merchant_id, environment, idempotency_key, request_hash, reference_id, mode, status, request_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'ACCEPTED', $8) ON CONFLICT DO NOTHING RETURNING created_at`,
			id, merchantID, environment, idempotencyKey, hash, p.Header.ReferenceID, p.Header.Mode, rid).Scan(&createdAt)
		if errors.Is(err, pgx.ErrNoRows) {
			replay = true
			return s.replay(ctx, tx, id, hash, &a, &pending)
		}
		if err != nil {
			return fmt.Errorf("insert batch: %w", err)
		}
		a = Accepted{ID: id, ReferenceID: p.Header.ReferenceID, Mode: p.Header.Mode, Currency: "IDR",
			Rejected: p.Errors, RejectedCount: p.InvalidRows, Duplicates: []Duplicate{}, CreatedAt: createdAt}
		if a.Rejected == nil {
			a.Rejected = []RowError{}
		}
		if err := copyItems(ctx, tx, merchantID, environment, p.Items); err != nil {
			return err
		}
		// Every item keeps the batch call's X-Request-Id: the column's
		// default reads this transaction-local setting (migration 00017),
		// since payout.InsertStaged does not name request_id.
		if _, err := tx.Exec(ctx, `SELECT set_config('disburse.request_id', $1, true)`, rid); err != nil {
			return fmt.Errorf("set request id: %w", err)
		}
		staged, err := payout.InsertStaged(ctx, tx, merchantID, environment, id)
		if err == nil {
			// payout.InsertStaged does not copy metadata yet: set it on the
			// items that have some, in the same transaction (no trigger
			// watches metadata). Fold into InsertStaged when payout/ is free.
			_, err = tx.Exec(ctx, `UPDATE disbursements d SET metadata = t.metadata FROM batch_items t
				WHERE d.id = t.id AND d.batch_id = $1 AND t.metadata <> '{}'::jsonb`, id)
		}
		if err != nil {
			return err
		}
		for _, st := range staged {
			pending = append(pending, st.ID)
			a.TotalAmount += st.Amount
		}
		a.ItemCount = len(pending)
		// Items not inserted: their reference_id was used before.
		rows, err := tx.Query(ctx, `SELECT t.row, t.reference_id, d.id, d.status FROM batch_items t
			JOIN disbursements d ON d.merchant_id = $1 AND d.environment = $2 AND d.reference_id = t.reference_id
			WHERE d.batch_id IS DISTINCT FROM $3 ORDER BY t.row`, merchantID, environment, id)
		if err != nil {
			return fmt.Errorf("find duplicates: %w", err)
		}
		for rows.Next() {
			var dup Duplicate
			if err := rows.Scan(&dup.Row, &dup.ReferenceID, &dup.DisbursementID, &dup.Status); err != nil {
				rows.Close()
				return err
			}
			a.DuplicateCount++
			if len(a.Duplicates) < MaxReportedErrors {
				a.Duplicates = append(a.Duplicates, dup)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if a.ItemCount+a.DuplicateCount != len(p.Items) {
			return fmt.Errorf("batch: %d items neither inserted nor duplicates", len(p.Items)-a.ItemCount-a.DuplicateCount)
		}
		a.Status = "ACCEPTED"
		if a.ItemCount == 0 {
			a.Status = "COMPLETED"
		}
		resp, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE batches SET item_count = $2, total_amount = $3, status = $4, response = $5,
				completed_at = CASE WHEN $4 = 'COMPLETED' THEN now() END WHERE id = $1`,
			id, a.ItemCount, a.TotalAmount, a.Status, resp); err != nil {
			return fmt.Errorf("update batch: %w", err)
		}
		if a.ItemCount > 0 {
			_, err = tx.Exec(ctx, `INSERT INTO batch_counts (batch_id, status, count, amount) VALUES ($1, 'PENDING', $2, $3)`,
				id, a.ItemCount, a.TotalAmount)
		}
		if err == nil && hold != nil && a.ItemCount > 0 {
			if err = hold(ctx, tx, a, pending); err == nil {
				pending = nil
				// Moving the items marked the batch PROCESSING; it is not yet.
				_, err = tx.Exec(ctx, `UPDATE batches SET status = 'ACCEPTED' WHERE id = $1`, id)
			}
		}
		return err
	})
	return a, pending, replay, err
}

func (s *Store) replay(ctx context.Context, tx pgx.Tx, id string, hash []byte, a *Accepted, pending *[]string) error {
	var prevHash, resp []byte
	if err := tx.QueryRow(ctx, `SELECT request_hash, response FROM batches WHERE id = $1`, id).Scan(&prevHash, &resp); err != nil {
		return fmt.Errorf("read batch for replay: %w", err)
	}
	if !bytes.Equal(prevHash, hash) {
		return ErrIdempotencyKeyReused
	}
	if err := json.Unmarshal(resp, a); err != nil {
		return fmt.Errorf("stored batch answer: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT id FROM disbursements WHERE batch_id = $1 AND status = 'PENDING' ORDER BY id`, id)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	*pending = ids
	return err
}

// copyItems loads the items into a temporary table with COPY.
func copyItems(ctx context.Context, tx pgx.Tx, merchantID, environment string, items []Item) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE batch_items (
			row integer, id text, idempotency_key text, reference_id text, bank_code text, account_number text,
			account_holder_name text, amount bigint, currency text, description text, metadata jsonb) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("temp table: %w", err)
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"batch_items"},
		[]string{"row", "id", "idempotency_key", "reference_id", "bank_code", "account_number", "account_holder_name", "amount", "currency", "description", "metadata"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			i := 0
			return func() ([]any, error) {
				if i == len(items) {
					return nil, nil
				}
				it := items[i]
				i++
				key := ItemKey(it.ReferenceID)
				meta := it.Metadata
				if meta == nil {
					meta = map[string]string{}
				}
				return []any{it.Row, payout.ID(merchantID, environment, key), key, it.ReferenceID, it.BankCode, it.AccountNumber,
					it.AccountHolderName, it.Amount, it.Currency, it.Description, meta}, nil
			}
		}()))
	if err != nil {
		return fmt.Errorf("copy items: %w", err)
	}
	return nil
}

// Count is the items of one status (and failure code).
type Count struct {
	Count  int   `json:"count"`
	Amount int64 `json:"amount"`
}

// Batch is a batch with its progress, as GET /v1/batches/{id} shows it.
type Batch struct {
	ID          string           `json:"id"`
	ReferenceID string           `json:"reference_id"`
	Mode        string           `json:"mode"`
	Status      string           `json:"status"`
	ItemCount   int              `json:"item_count"`
	TotalAmount int64            `json:"total_amount"`
	Currency    string           `json:"currency"`
	Counts      map[string]Count `json:"counts"`   // by item status
	Failures    map[string]int   `json:"failures"` // FAILED items by failure code
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	CompletedAt *time.Time       `json:"completed_at"`
	MerchantID  string           `json:"-"`
	Environment string           `json:"-"`
}

// Finished is how many items are terminal.
func (b Batch) Finished() int {
	n := 0
	for _, st := range []string{"COMPLETED", "FAILED", "REVERSED", "CANCELLED"} {
		n += b.Counts[st].Count
	}
	return n
}

// Get returns a batch of the merchant's environment with its progress; an
// empty merchantID reads any batch (for the stages).
func (s *Store) Get(ctx context.Context, merchantID, environment, id string) (Batch, error) {
	b := Batch{Currency: "IDR", Counts: map[string]Count{}, Failures: map[string]int{}}
	err := s.db.QueryRow(ctx, `SELECT id, merchant_id, environment, reference_id, mode, status, item_count, total_amount,
			created_at, updated_at, completed_at
		FROM batches WHERE id = $1 AND ($2 = '' OR (merchant_id = $2 AND environment = $3))`, id, merchantID, environment).
		Scan(&b.ID, &b.MerchantID, &b.Environment, &b.ReferenceID, &b.Mode, &b.Status, &b.ItemCount, &b.TotalAmount,
			&b.CreatedAt, &b.UpdatedAt, &b.CompletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Batch{}, ErrNotFound
	}
	if err != nil {
		return Batch{}, err
	}
	rows, err := s.db.Query(ctx, `SELECT status, failure_code, count, amount FROM batch_counts WHERE batch_id = $1 AND count <> 0`, id)
	if err != nil {
		return Batch{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var status, code string
		var c Count
		if err := rows.Scan(&status, &code, &c.Count, &c.Amount); err != nil {
			return Batch{}, err
		}
		sum := b.Counts[status]
		sum.Count += c.Count
		sum.Amount += c.Amount
		b.Counts[status] = sum
		if code != "" {
			b.Failures[code] += c.Count
		}
	}
	return b, rows.Err()
}

// Items pages through a batch's payouts in id order, after the cursor (an
// id), optionally of one status.
func (s *Store) Items(ctx context.Context, batchID, status, after string, limit int) ([]payout.Disbursement, error) {
	return payout.NewStore(s.db).BatchItems(ctx, batchID, status, after, limit)
}
