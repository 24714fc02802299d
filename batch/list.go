package batch

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor: a list cursor List did not hand out.
var ErrBadCursor = errors.New("batch: invalid list cursor")

// MaxListLimit is the largest page of GET /v1/batches.
const MaxListLimit = 200

// ListFilter selects batches of one environment; empty fields do not
// filter. CreatedFrom is inclusive, CreatedTo exclusive.
type ListFilter struct {
	ReferenceID string
	Statuses    []string
	CreatedFrom time.Time
	CreatedTo   time.Time
}

// listCursor is the position after a batch in the newest-first list.
func listCursor(created time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(created.UnixMicro(), 10) + "." + id))
}

// ParseListCursor checks a cursor of List ("" is the start).
func ParseListCursor(s string) (time.Time, string, error) {
	if s == "" {
		return time.Time{}, "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 128 {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), ".")
	micros, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || micros < 0 || !strings.HasPrefix(id, "bat_") || len(id) > 64 || len(id) <= 4 {
		return time.Time{}, "", ErrBadCursor
	}
	for _, r := range id[4:] {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return time.Time{}, "", ErrBadCursor
		}
	}
	return time.UnixMicro(micros).UTC(), id, nil
}

// List returns up to limit batches of the environment matching f, newest
// first (created_at, then id, descending), after the cursor, each with
// its progress, and the next page's cursor ("" when none). Keyset pages
// on a key that never changes: batches created while a client pages never
// repeat or shift a page (index batches_list, migration 00013).
func (s *Store) List(ctx context.Context, merchantID, environment string, f ListFilter, cursor string, limit int) ([]Batch, string, error) {
	if limit < 1 || limit > MaxListLimit {
		return nil, "", fmt.Errorf("batch: list limit %d out of 1..%d", limit, MaxListLimit)
	}
	at, after, err := ParseListCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	args := []any{merchantID, environment}
	where := "merchant_id = $1 AND environment = $2"
	cond := func(sql string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			sql = strings.Replace(sql, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where += " AND " + sql
	}
	if f.ReferenceID != "" {
		cond("reference_id = ?", f.ReferenceID)
	}
	if len(f.Statuses) > 0 {
		cond("status = ANY(?)", f.Statuses)
	}
	if !f.CreatedFrom.IsZero() {
		cond("created_at >= ?", f.CreatedFrom)
	}
	if !f.CreatedTo.IsZero() {
		cond("created_at < ?", f.CreatedTo)
	}
	if after != "" {
		cond("(created_at, id) < (?, ?)", at, after)
	}
	args = append(args, limit+1)
	rows, err := s.db.Query(ctx, `SELECT id, merchant_id, environment, reference_id, mode, status, item_count, total_amount,
			created_at, updated_at, completed_at
		FROM batches WHERE `+where+` ORDER BY created_at DESC, id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list batches: %w", err)
	}
	var list []Batch
	for rows.Next() {
		b := Batch{Currency: "IDR", Counts: map[string]Count{}, Failures: map[string]int{}}
		if err := rows.Scan(&b.ID, &b.MerchantID, &b.Environment, &b.ReferenceID, &b.Mode, &b.Status, &b.ItemCount, &b.TotalAmount,
			&b.CreatedAt, &b.UpdatedAt, &b.CompletedAt); err != nil {
			rows.Close()
			return nil, "", err
		}
		list = append(list, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = listCursor(list[limit-1].CreatedAt, list[limit-1].ID)
	}
	if len(list) == 0 {
		return []Batch{}, "", nil
	}
	// Every batch's progress in one query.
	ids := make([]string, len(list))
	pos := map[string]int{}
	for i, b := range list {
		ids[i] = b.ID
		pos[b.ID] = i
	}
	rows, err = s.db.Query(ctx, `SELECT batch_id, status, failure_code, count, amount FROM batch_counts
		WHERE batch_id = ANY($1) AND count <> 0`, ids)
	if err != nil {
		return nil, "", fmt.Errorf("batch progress: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, status, code string
		var c Count
		if err := rows.Scan(&id, &status, &code, &c.Count, &c.Amount); err != nil {
			return nil, "", err
		}
		b := &list[pos[id]]
		sum := b.Counts[status]
		sum.Count += c.Count
		sum.Amount += c.Amount
		b.Counts[status] = sum
		if code != "" {
			b.Failures[code] += c.Count
		}
	}
	return list, next, rows.Err()
}
