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

// Columns is the select list that Scan reads, for the ledger package's queries too.
const Columns = `id, merchant_id, environment, reference_id, batch_id, bank_code, account_number,
	account_holder_name, amount, currency, description, metadata, fee, status, failure_code,
	version, created_at, updated_at, completed_at`

// RecordEvents is a CTE clause that writes a payout_events row for every
// row of a preceding CTE named "changed" (rows of disbursements). Every
// statement that changes a payout's status uses it, so the feed and the
// change commit together:
//
//	WITH changed AS (UPDATE disbursements ... RETURNING *), ` + "`+RecordEvents+`" + `
//	SELECT ... FROM changed
const RecordEvents = `ev AS (INSERT INTO payout_events
		(disbursement_id, merchant_id, environment, batch_id, status, failure_code, version, at)
		SELECT id, merchant_id, environment, batch_id, status, failure_code, version, updated_at FROM changed)`

// Scan reads one row selected with Columns.
func Scan(row pgx.Row) (Disbursement, error) {
	var d Disbursement
	var failure string
	err := row.Scan(&d.ID, &d.MerchantID, &d.Environment, &d.ReferenceID, &d.BatchID, &d.BankCode,
		&d.AccountNumber, &d.AccountHolderName, &d.Amount, &d.Currency, &d.Description, &d.Metadata,
		&d.Fee, &d.Status, &failure, &d.Version, &d.CreatedAt, &d.UpdatedAt, &d.CompletedAt)
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
				description, metadata, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'PENDING')
			ON CONFLICT DO NOTHING
			RETURNING *), `+RecordEvents+`
		SELECT `+Columns+` FROM changed`,
		id, merchantID, environment, idempotencyKey, hash, req.ReferenceID, req.BankCode,
		req.AccountNumber, req.AccountHolderName, req.Amount, req.Currency, req.Description, meta)
	d, err = Scan(row)
	if err == nil {
		return d, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Disbursement{}, false, fmt.Errorf("insert payout: %w", err)
	}

	// A conflict: the same idempotency key (a replay or a reuse), or the
	// same reference_id under another key.
	var prevHash []byte
	row = s.db.QueryRow(ctx, `SELECT request_hash, `+Columns+` FROM disbursements
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
	return Scan(prefixScanner{row: row, first: hash})
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
	d, err := Scan(s.db.QueryRow(ctx, `SELECT `+Columns+` FROM disbursements
		WHERE id = $1 AND merchant_id = $2 AND environment = $3`, id, merchantID, environment))
	if errors.Is(err, pgx.ErrNoRows) {
		return Disbursement{}, ErrNotFound
	}
	return d, err
}

// Load returns a payout by id alone, for the stages.
func (s *Store) Load(ctx context.Context, id string) (Disbursement, error) {
	d, err := Scan(s.db.QueryRow(ctx, `SELECT `+Columns+` FROM disbursements WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Disbursement{}, ErrNotFound
	}
	return d, err
}
