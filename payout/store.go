package payout

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	// ErrNotFound: no payout with that id in the caller's merchant and environment.
	ErrNotFound = errors.New("payout: not found")
	// ErrIdempotencyKeyReused: the key was used before with a different body.
	ErrIdempotencyKeyReused = errors.New("payout: idempotency key reused with a different request")
	// ErrDuplicateReference: the merchant used this reference_id for another payout.
	ErrDuplicateReference = errors.New("payout: reference_id already used")
)

// Store creates and reads payouts in Postgres.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// columns is the select list that scan reads.
const columns = `id, merchant_id, environment, reference_id, batch_id, bank_code, account_number,
	account_holder_name, amount, currency, description, metadata, fee, status, failure_code,
	version, created_at, updated_at, completed_at, request_id`

// recordEvents is a CTE clause that writes a payout_events row for every
// row of a preceding CTE named "changed" (rows of disbursements). Every
// statement that creates a payout or changes its status uses it, so the
// change and its event commit together (the outbox):
//
//	WITH changed AS (UPDATE disbursements ... RETURNING *), ` + "`+recordEvents+`" + `
//	SELECT ... FROM changed
const recordEvents = `ev AS (INSERT INTO payout_events
		(disbursement_id, merchant_id, environment, batch_id, status, failure_code, version, at)
		SELECT id, merchant_id, environment, batch_id, status, failure_code, version, updated_at FROM changed)`

// scan reads one row selected with columns.
func scan(row pgx.Row) (Disbursement, error) {
	var d Disbursement
	var failure string
	err := row.Scan(&d.ID, &d.MerchantID, &d.Environment, &d.ReferenceID, &d.BatchID, &d.BankCode,
		&d.AccountNumber, &d.AccountHolderName, &d.Amount, &d.Currency, &d.Description, &d.Metadata,
		&d.Fee, &d.Status, &failure, &d.Version, &d.CreatedAt, &d.UpdatedAt, &d.CompletedAt, &d.RequestID)
	if failure != "" {
		d.FailureCode = &failure
	}
	return d, err
}

// Create inserts the PENDING payout for an idempotency key. When the key was
// used before with the same request it returns that payout and created=false
// (a replay); with a different request, ErrIdempotencyKeyReused.
func (s *Store) Create(ctx context.Context, merchantID, environment, idempotencyKey string, req Request) (d Disbursement, created bool, err error) {
	id := ID(merchantID, environment, idempotencyKey)
	hash := req.Hash()
	meta := req.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	row := s.db.QueryRow(ctx, `
		WITH changed AS (
			INSERT INTO disbursements (id, merchant_id, environment, idempotency_key, request_hash,
				reference_id, bank_code, account_number, account_holder_name, amount, currency,
				description, metadata, status, request_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'PENDING', $14)
			ON CONFLICT DO NOTHING
			RETURNING *), `+recordEvents+`
		SELECT `+columns+` FROM changed`,
		id, merchantID, environment, idempotencyKey, hash, req.ReferenceID, req.BankCode,
		req.AccountNumber, req.AccountHolderName, req.Amount, req.Currency, req.Description, meta, RequestID(ctx))
	d, err = scan(row)
	if err == nil {
		return d, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Disbursement{}, false, fmt.Errorf("insert payout: %w", err)
	}

	// A conflict: the same idempotency key (a replay or a reuse), or the
	// same reference_id under another key.
	var prevHash []byte
	row = s.db.QueryRow(ctx, `SELECT request_hash, `+columns+` FROM disbursements
		WHERE merchant_id = $1 AND environment = $2 AND idempotency_key = $3`,
		merchantID, environment, idempotencyKey)
	d, err = scanWithHash(row, &prevHash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Disbursement{}, false, ErrDuplicateReference
	case err != nil:
		return Disbursement{}, false, fmt.Errorf("read payout for idempotency key: %w", err)
	case !bytes.Equal(prevHash, hash):
		return Disbursement{}, false, ErrIdempotencyKeyReused
	}
	return d, false, nil
}

func scanWithHash(row pgx.Row, hash *[]byte) (Disbursement, error) {
	return scan(prefixScanner{row: row, first: hash})
}

// prefixScanner lets Scan read a row that has one extra leading column.
type prefixScanner struct {
	row   pgx.Row
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.row.Scan(append([]any{p.first}, dest...)...)
}

// Get returns one payout of the merchant's environment.
func (s *Store) Get(ctx context.Context, merchantID, environment, id string) (Disbursement, error) {
	d, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM disbursements
		WHERE id = $1 AND merchant_id = $2 AND environment = $3`, id, merchantID, environment))
	if errors.Is(err, pgx.ErrNoRows) {
		return Disbursement{}, ErrNotFound
	}
	return d, err
}

// Load returns a payout by id alone, for the stages.
func (s *Store) Load(ctx context.Context, id string) (Disbursement, error) {
	d, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM disbursements WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Disbursement{}, ErrNotFound
	}
	return d, err
}

// LoadMany returns the payouts with the given ids, by id; unknown ids are
// left out.
func (s *Store) LoadMany(ctx context.Context, ids []string) (map[string]Disbursement, error) {
	out := make(map[string]Disbursement, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM disbursements WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read payouts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out[d.ID] = d
	}
	return out, rows.Err()
}

// BatchItems pages through a batch's payouts in id order, after the cursor
// (an id), optionally of one status.
func (s *Store) BatchItems(ctx context.Context, batchID, status, after string, limit int) ([]Disbursement, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM disbursements
		WHERE batch_id = $1 AND id > $2 AND ($3 = '' OR status = $3) ORDER BY id LIMIT $4`, batchID, after, status, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Disbursement, error) { return scan(r) })
}

// Staged is one payout InsertStaged created.
type Staged struct {
	ID     string
	Amount int64
}

// InsertStaged creates, inside tx, the PENDING payouts of a batch from the
// rows the caller copied into the temporary table batch_items (columns id,
// row, idempotency_key, reference_id, bank_code, account_number,
// account_holder_name, amount, currency, description), in row
// order, with their creation events. A row whose reference_id the merchant
// used before is skipped (ON CONFLICT DO NOTHING): the caller finds those.
func InsertStaged(ctx context.Context, tx pgx.Tx, merchantID, environment, batchID string) ([]Staged, error) {
	rows, err := tx.Query(ctx, `WITH changed AS (
			INSERT INTO disbursements (id, merchant_id, environment, idempotency_key, request_hash, reference_id,
				batch_id, bank_code, account_number, account_holder_name, amount, currency, description, status)
			SELECT t.id, $1, $2, t.idempotency_key, '\x00', t.reference_id, $3, t.bank_code, t.account_number,
				t.account_holder_name, t.amount, t.currency, t.description, 'PENDING'
			FROM batch_items t ORDER BY t.row
			ON CONFLICT DO NOTHING
			RETURNING *), `+recordEvents+`
		SELECT id, amount FROM changed`, merchantID, environment, batchID)
	if err != nil {
		return nil, fmt.Errorf("insert items: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Staged, error) {
		var s Staged
		err := r.Scan(&s.ID, &s.Amount)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("insert items: %w", err)
	}
	return out, nil
}
