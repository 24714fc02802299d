package payout

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrBadSearchCursor: a list cursor this store did not hand out.
var ErrBadSearchCursor = errors.New("payout: invalid list cursor")

// MaxSearchLimit is the largest page GET /v1/disbursements returns.
const MaxSearchLimit = 200

// Filter selects payouts of one merchant environment for Search. Empty
// fields do not filter. CreatedFrom is inclusive, CreatedTo exclusive.
type Filter struct {
	ReferenceID string
	BatchID     string
	Statuses    []Status
	BankCode    string
	CreatedFrom time.Time
	CreatedTo   time.Time
}

// where is the filter as SQL conditions on the disbursements table (alias
// d), numbered from the placeholder $first, and their arguments.
func (f Filter) where(first int) ([]string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(first+len(args)-1)))
	}
	if f.ReferenceID != "" {
		add("d.reference_id = ?", f.ReferenceID)
	}
	if f.BatchID != "" {
		add("d.batch_id = ?", f.BatchID)
	}
	if len(f.Statuses) == 1 {
		// Equality, not ANY: the index then yields the page in order.
		add("d.status = ?", string(f.Statuses[0]))
	} else if len(f.Statuses) > 1 {
		s := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			s[i] = string(st)
		}
		add("d.status = ANY(?)", s)
	}
	if f.BankCode != "" {
		add("d.bank_code = ?", f.BankCode)
	}
	if !f.CreatedFrom.IsZero() {
		add("d.created_at >= ?", f.CreatedFrom)
	}
	if !f.CreatedTo.IsZero() {
		add("d.created_at < ?", f.CreatedTo)
	}
	return conds, args
}

// listCursor is a position in the newest-first list: the created_at
// (microseconds, as Postgres keeps it) and id of the last payout shown.
type listCursor struct {
	micros int64
	id     string
}

func (c listCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.micros, 10) + "." + c.id))
}

// parseListCursor accepts only what String produces: anything else,
// invalid UTF-8 and NUL bytes included, is ErrBadSearchCursor, never a
// query error.
func parseListCursor(s string) (listCursor, error) {
	if len(s) > 128 {
		return listCursor{}, ErrBadSearchCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return listCursor{}, ErrBadSearchCursor
	}
	ts, id, ok := strings.Cut(string(raw), ".")
	micros, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || micros < 0 || !strings.HasPrefix(id, "dsb_") || len(id) <= 4 || len(id) > 64 {
		return listCursor{}, ErrBadSearchCursor
	}
	for _, r := range id[4:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return listCursor{}, ErrBadSearchCursor
		}
	}
	return listCursor{micros, id}, nil
}

// ValidSearchCursor reports whether s is a cursor Search could have handed out.
func ValidSearchCursor(s string) bool {
	_, err := parseListCursor(s)
	return s == "" || err == nil
}

// Search returns up to limit payouts of the environment that match f,
// newest first (created_at, then id, both descending), after the cursor
// ("" for the first page), and the cursor of the next page ("" when there
// is none).
//
// The order is a key every payout keeps for ever, and each page starts
// strictly after the last key shown, so payouts inserted while a client
// pages are never shown twice and never push a payout out of the pages:
// new payouts are newer than the first page and appear on a fresh listing.
// Every filter combination is served by an index of migration 00010 that
// ends in (created_at DESC, id DESC).
func (s *Store) Search(ctx context.Context, merchantID, environment string, f Filter, cursor string, limit int) ([]Disbursement, string, error) {
	if limit < 1 || limit > MaxSearchLimit {
		return nil, "", fmt.Errorf("payout: search limit %d out of 1..%d", limit, MaxSearchLimit)
	}
	query, args, err := searchQuery(merchantID, environment, f, cursor, limit+1)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("search payouts: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Disbursement, error) { return scan(r) })
	if err != nil {
		return nil, "", fmt.Errorf("search payouts: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		last := list[limit-1]
		next = listCursor{last.CreatedAt.UnixMicro(), last.ID}.String()
	}
	return list, next, nil
}

// searchQuery is the statement of one Search page of up to limit rows.
func searchQuery(merchantID, environment string, f Filter, cursor string, limit int) (string, []any, error) {
	conds, args := f.where(3)
	args = append([]any{merchantID, environment}, args...)
	if cursor != "" {
		c, err := parseListCursor(cursor)
		if err != nil {
			return "", nil, err
		}
		args = append(args, time.UnixMicro(c.micros).UTC(), c.id)
		conds = append(conds, fmt.Sprintf("(d.created_at, d.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	where := "d.merchant_id = $1 AND d.environment = $2"
	for _, c := range conds {
		where += " AND " + c
	}
	args = append(args, limit)
	return `SELECT ` + prefixed("d", columns) + ` FROM disbursements d WHERE ` + where +
		fmt.Sprintf(` ORDER BY d.created_at DESC, d.id DESC LIMIT $%d`, len(args)), args, nil
}

// prefixed qualifies every column of a columns-style list with alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
