package payout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor: an events cursor this store did not hand out.
var ErrBadCursor = errors.New("payout: invalid events cursor")

// Event is one status change of a payout, as GET /v1/events shows it. ID
// is also the cursor: pass it as after= to read the changes after it.
type Event struct {
	ID             string    `json:"id"`
	DisbursementID string    `json:"disbursement_id"`
	ReferenceID    string    `json:"reference_id"`
	BatchID        *string   `json:"batch_id"`
	Status         Status    `json:"status"`
	FailureCode    *string   `json:"failure_code"`
	Version        int       `json:"version"`
	At             time.Time `json:"at"`
}

// cursor is a position in the feed: the writing transaction, then the row.
type cursor struct{ txid, id uint64 }

func (c cursor) String() string {
	return "evt_" + strconv.FormatUint(c.txid, 10) + "_" + strconv.FormatUint(c.id, 10)
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	a, b, ok := strings.Cut(strings.TrimPrefix(s, "evt_"), "_")
	if !ok || !strings.HasPrefix(s, "evt_") {
		return cursor{}, ErrBadCursor
	}
	tx, err1 := strconv.ParseUint(a, 10, 63)
	id, err2 := strconv.ParseUint(b, 10, 63)
	if err1 != nil || err2 != nil {
		return cursor{}, ErrBadCursor
	}
	return cursor{tx, id}, nil
}

// Events returns up to limit status changes of the environment after the
// cursor after ("": from the first), in a stable order, and the cursor to
// continue from (after itself when there is nothing new).
//
// The order is (writing transaction id, row id), and only changes of
// transactions older than every transaction still running are shown: a
// change committed later can then never land before a cursor already handed
// out, so a reader that follows the cursors sees every change exactly once.
// A change appears once its transaction and every older one still running
// have ended (normally milliseconds). One payout's changes come in version
// order, since each is written by a transaction that waited for the last.
func (s *Store) Events(ctx context.Context, merchantID, environment, after string, limit int) ([]Event, string, error) {
	c, err := parseCursor(after)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.db.Query(ctx, `
		SELECT e.txid::text::bigint, e.id, e.disbursement_id, coalesce(d.reference_id, ''), e.batch_id, e.status,
			e.failure_code, e.version, e.at
		FROM payout_events e LEFT JOIN disbursements d ON d.id = e.disbursement_id
		WHERE e.merchant_id = $1 AND e.environment = $2
			AND (e.txid, e.id) > ($3::text::xid8, $4)
			AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY e.txid, e.id LIMIT $5`,
		merchantID, environment, strconv.FormatUint(c.txid, 10), int64(c.id), limit)
	if err != nil {
		return nil, "", fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	out := []Event{}
	next := c
	for rows.Next() {
		var e Event
		var tx, id int64
		var failure string
		if err := rows.Scan(&tx, &id, &e.DisbursementID, &e.ReferenceID, &e.BatchID, &e.Status, &failure, &e.Version, &e.At); err != nil {
			return nil, "", err
		}
		if failure != "" {
			e.FailureCode = &failure
		}
		next = cursor{uint64(tx), uint64(id)}
		e.ID = next.String()
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if after == "" && len(out) == 0 {
		return out, "", nil
	}
	return out, next.String(), nil
}
