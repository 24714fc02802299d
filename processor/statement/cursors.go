package statement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLeaseLost: another follower holds the bank's lease now (ours lapsed),
// or moved its cursor; stop and stand by.
var ErrLeaseLost = errors.New("statement: lease lost")

// Cursors stores where each environment's statement of each bank has been
// read to, and who reads it (table statement_cursors, keyed by bank and
// environment: each environment's gateway has its own statement).
type Cursors struct {
	db *pgxpool.Pool
}

// NewCursors returns the store on db.
func NewCursors(db *pgxpool.Pool) *Cursors { return &Cursors{db: db} }

// Acquire takes or renews owner's lease on env's statement of bank for ttl
// and returns the stored cursor. held is false while another owner's lease
// is live.
func (c *Cursors) Acquire(ctx context.Context, env, bank, owner string, ttl time.Duration) (cursor string, held bool, err error) {
	err = c.db.QueryRow(ctx, `INSERT INTO statement_cursors (bank, environment, owner, lease_until)
		VALUES ($1, $4, $2, now() + $3::bigint * interval '1 millisecond')
		ON CONFLICT (bank, environment) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
			WHERE statement_cursors.owner = excluded.owner OR statement_cursors.lease_until < now()
		RETURNING cursor`, bank, owner, ttl.Milliseconds(), env).Scan(&cursor)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("statement lease of %s (%s): %w", bank, env, err)
	}
	return cursor, true, nil
}

// Advance moves env's cursor of bank from `from` to `to` and renews the lease,
// only while owner is still the lease's owner and the cursor is still
// `from` (a lease that lapsed without anyone taking it over is still
// ours); otherwise ErrLeaseLost.
func (c *Cursors) Advance(ctx context.Context, env, bank, owner, from, to string, ttl time.Duration) error {
	tag, err := c.db.Exec(ctx, `UPDATE statement_cursors
		SET cursor = $4, lease_until = now() + $5::bigint * interval '1 millisecond', updated_at = now()
		WHERE bank = $1 AND environment = $6 AND owner = $2 AND cursor = $3`, bank, owner, from, to, ttl.Milliseconds(), env)
	if err != nil {
		return fmt.Errorf("store statement cursor of %s (%s): %w", bank, env, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Release gives up owner's lease at once, so a standby takes over without
// waiting for it to lapse.
func (c *Cursors) Release(ctx context.Context, env, bank, owner string) error {
	_, err := c.db.Exec(ctx, `UPDATE statement_cursors SET lease_until = '-infinity' WHERE bank = $1 AND environment = $3 AND owner = $2`, bank, owner, env)
	return err
}

// Cursor is env's stored cursor of bank ("" when never read).
func (c *Cursors) Cursor(ctx context.Context, env, bank string) (string, error) {
	var cur string
	err := c.db.QueryRow(ctx, `SELECT cursor FROM statement_cursors WHERE bank = $1 AND environment = $2`, bank, env).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return cur, err
}
