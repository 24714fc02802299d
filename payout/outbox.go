package payout

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Position is a place in the events table: the writing transaction, then
// the row. Events become visible to the outbox in this order.
type Position struct{ TxID, ID uint64 }

// Change is one status change to publish: the payout as that change left
// it (Status, FailureCode, Version and UpdatedAt are the change's), and
// where the change stands in the outbox.
type Change struct {
	Disbursement
	At Position
	// RequestID is the X-Request-Id of the API call that created the
	// payout ("" when it had none), for the status record's header.
	RequestID string
}

// Outbox is the transactional outbox over payout_events: every status
// change is written with its event row in the same transaction as the
// change, and one relay at a time reads the rows in commit-safe order and
// publishes them. It holds a Postgres advisory lock on a connection of its
// own while it is the relay; the others stand by.
type Outbox struct {
	db   *pgxpool.Pool
	name string
	key  int64
	conn *pgxpool.Conn
}

// Outbox returns the outbox stream called name (the topic it feeds).
func (s *Store) Outbox(name string) *Outbox {
	h := fnv.New64a()
	h.Write([]byte("disburse.outbox/" + name))
	return &Outbox{db: s.db, name: name, key: int64(h.Sum64())}
}

// ErrNotHeld: the outbox lock was lost (its connection broke) or never taken.
var ErrNotHeld = errors.New("payout: outbox lock not held")

// Acquire tries to become the stream's relay. It reports false, without an
// error, when another relay holds it.
func (o *Outbox) Acquire(ctx context.Context) (bool, error) {
	if o.conn != nil {
		return true, nil
	}
	conn, err := o.db.Acquire(ctx)
	if err != nil {
		return false, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, o.key).Scan(&ok); err != nil {
		conn.Release()
		return false, fmt.Errorf("outbox lock: %w", err)
	}
	if !ok {
		conn.Release()
		return false, nil
	}
	o.conn = conn
	return true, nil
}

// Release gives the stream up. The lock ends with its session: a connection
// that may still hold it is closed, not returned to the pool.
func (o *Outbox) Release() {
	if o.conn == nil {
		return
	}
	_ = o.conn.Hijack().Close(context.Background())
	o.conn = nil
}

// Cursor is where the stream's relay stopped: every change at or before it
// was published.
func (o *Outbox) Cursor(ctx context.Context) (Position, error) {
	if o.conn == nil {
		return Position{}, ErrNotHeld
	}
	var tx string
	var id int64
	err := o.conn.QueryRow(ctx, `SELECT txid::text, id FROM outbox_cursors WHERE name = $1`, o.name).Scan(&tx, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Position{}, nil
	}
	if err != nil {
		return Position{}, fmt.Errorf("read outbox cursor: %w", err)
	}
	t, err := strconv.ParseUint(tx, 10, 64)
	return Position{TxID: t, ID: uint64(id)}, err
}

// Save records that every change up to p was published. The cursor never
// moves back, so a relay that lost the lock cannot undo its successor's work.
func (o *Outbox) Save(ctx context.Context, p Position) error {
	if o.conn == nil {
		return ErrNotHeld
	}
	_, err := o.conn.Exec(ctx, `INSERT INTO outbox_cursors (name, txid, id) VALUES ($1, $2::text::xid8, $3)
		ON CONFLICT (name) DO UPDATE SET txid = excluded.txid, id = excluded.id, updated_at = now()
		WHERE (outbox_cursors.txid, outbox_cursors.id) < (excluded.txid, excluded.id)`,
		o.name, strconv.FormatUint(p.TxID, 10), int64(p.ID))
	if err != nil {
		return fmt.Errorf("save outbox cursor: %w", err)
	}
	return nil
}

// Read returns up to limit status changes after p, in order. Creation
// (PENDING) is not a change and is skipped. Only changes of transactions
// older than every transaction still running are returned, so no change can
// commit later at a position before one already read: a relay that follows
// the cursor publishes every change exactly once (at least once across a
// crash between publish and Save).
func (o *Outbox) Read(ctx context.Context, after Position, limit int) ([]Change, error) {
	if o.conn == nil {
		return nil, ErrNotHeld
	}
	rows, err := o.conn.Query(ctx, `
		SELECT e.txid::text::bigint, e.id, d.id, d.merchant_id, d.environment, d.reference_id, e.batch_id,
			d.bank_code, d.amount, d.currency, d.fee, e.status, e.failure_code, e.version, e.at, d.created_at, d.request_id
		FROM payout_events e JOIN disbursements d ON d.id = e.disbursement_id
		WHERE (e.txid, e.id) > ($1::text::xid8, $2)
			AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
			AND e.status <> 'PENDING'
		ORDER BY e.txid, e.id LIMIT $3`,
		strconv.FormatUint(after.TxID, 10), int64(after.ID), limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Change, error) {
		var c Change
		var tx, id int64
		var failure string
		err := r.Scan(&tx, &id, &c.ID, &c.MerchantID, &c.Environment, &c.ReferenceID, &c.BatchID,
			&c.BankCode, &c.Amount, &c.Currency, &c.Fee, &c.Status, &failure, &c.Version, &c.UpdatedAt, &c.CreatedAt, &c.RequestID)
		c.At = Position{TxID: uint64(tx), ID: uint64(id)}
		if failure != "" {
			c.FailureCode = &failure
		}
		return c, err
	})
}
