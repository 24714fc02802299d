package quote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/batch"
)

var (
	// ErrNotFound: no such quote in the caller's environment.
	ErrNotFound = errors.New("quote: not found")
	// ErrExpired: the quote is older than TTL.
	ErrExpired = errors.New("quote: expired")
	// ErrMismatch: the batch is not the one quoted, or the fees changed.
	ErrMismatch = errors.New("quote: the batch does not match the quote")
)

// Store keeps quotes in Postgres (table batch_quotes).
type Store struct{ db *pgxpool.Pool }

// NewStore returns a store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Save gives q its id and stores it for the merchant environment.
func (s *Store) Save(ctx context.Context, merchantID, environment string, q *Quote) error {
	q.ID = newID()
	body, err := json.Marshal(q)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO batch_quotes (id, merchant_id, environment, digest, fee_flat, fee_bps,
			max_per_payout, item_count, total_debit, response, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		q.ID, merchantID, environment, q.digest, q.fees.Flat, q.fees.BPS, q.fees.MaxPerPayout, q.ItemCount, q.TotalDebit,
		body, q.CreatedAt, q.ExpiresAt)
	if err != nil {
		return fmt.Errorf("save quote: %w", err)
	}
	return nil
}

// Check holds a batch to its quote: the quote must be the environment's,
// not expired at now, quote the same batch (Digest) and the same fees and
// limit as the environment has now (fees). A batch that matches debits what
// the quote said, item by item.
func (s *Store) Check(ctx context.Context, merchantID, environment, id string, p *batch.Parsed, fees Fees, now time.Time) error {
	var digest []byte
	var quoted Fees
	var expires time.Time
	err := s.db.QueryRow(ctx, `SELECT digest, fee_flat, fee_bps, max_per_payout, expires_at FROM batch_quotes
		WHERE id = $1 AND merchant_id = $2 AND environment = $3`, id, merchantID, environment).
		Scan(&digest, &quoted.Flat, &quoted.BPS, &quoted.MaxPerPayout, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return fmt.Errorf("read quote: %w", err)
	case !now.Before(expires):
		return ErrExpired
	case !bytes.Equal(digest, Digest(p)):
		return fmt.Errorf("%w: the items, reference_id or mode differ from the quoted batch", ErrMismatch)
	case quoted != fees:
		return fmt.Errorf("%w: the environment's fees or max_per_payout changed since the quote", ErrMismatch)
	}
	return nil
}

// Used finds which of refs the environment's payouts already use: the
// items a batch would list as duplicates instead of paying them.
func (s *Store) Used(ctx context.Context, merchantID, environment string, refs []string) (map[string]batch.Duplicate, error) {
	out := map[string]batch.Duplicate{}
	if len(refs) == 0 {
		return out, nil
	}
	rows, err := s.db.Query(ctx, `SELECT reference_id, id, status FROM disbursements
		WHERE merchant_id = $1 AND environment = $2 AND reference_id = ANY($3)`, merchantID, environment, refs)
	if err != nil {
		return nil, fmt.Errorf("read used references: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d batch.Duplicate
		if err := rows.Scan(&d.ReferenceID, &d.DisbursementID, &d.Status); err != nil {
			return nil, err
		}
		out[d.ReferenceID] = d
	}
	return out, rows.Err()
}
