package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StatementLine types of a statement line.
const (
	MoveTopUp          = "topup"           // a deposit
	MovePayout         = "payout"          // the amount of a debited payout
	MoveFee            = "fee"             // the fee of a debited payout
	MoveRefund         = "refund"          // a failed payout's amount and fee, returned
	MoveReturn         = "return"          // a completed payout the bank returned
	MoveInvoicePayment = "invoice_payment" // an invoice payment posted to the balance
	MoveCancel         = "cancel"          // a cancelled payout's amount and fee, returned
	MoveAdjustment     = "adjustment"      // any other entry on the balance
)

// StatementLine is one line of a balance statement: a change of the
// environment's available balance and the balance after it.
type StatementLine struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	DisbursementID *string   `json:"disbursement_id"`
	Amount         int64     `json:"amount"` // signed: credits positive, debits negative
	BalanceAfter   int64     `json:"balance_after"`
	Currency       string    `json:"currency"`
	Memo           string    `json:"memo,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// ErrBadStatementCursor: a statement cursor Statement did not hand out.
var ErrBadStatementCursor = errors.New("ledger: invalid statement cursor")

// StatementCursor is a position in a statement: after the journal entry
// with this id.
func StatementCursor(entryID int64) string { return "bt_" + strconv.FormatInt(entryID, 10) }

// ParseStatementCursor reads a StatementCursor ("" is the start).
func ParseStatementCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, ok := strings.CutPrefix(s, "bt_")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil || n < 1 || strconv.FormatInt(n, 10) != v {
		return 0, ErrBadStatementCursor
	}
	return n, nil
}

// Statement returns the movements of the environment's available balance
// in currency made from from (inclusive, zero: the beginning) to to
// (exclusive, zero: now), after the journal entry afterEntry (0: from the
// first), in entry order, up to limit entries, and the entry to continue
// after (0 when this page is the last). A payout's debit is one entry of
// two lines, its amount and its fee.
//
// BalanceAfter is the account's balance after the line over its whole
// history, so the last line of the last page equals the balance GET
// /v1/balance shows (deposit billing) at the time of reading. Entries of
// one account get their ids while its row is locked (post and the debit
// steps lock accounts before inserting entries), so entry order is commit
// order for the account: a cursor never skips an entry committed later.
func Statement(ctx context.Context, q Querier, merchantID, environment, currency string, from, to time.Time, afterEntry int64, limit int) ([]StatementLine, int64, error) {
	var account int64
	err := q.QueryRow(ctx, `SELECT id FROM accounts WHERE merchant_id = $1 AND environment = $2 AND currency = $3 AND kind = 'available'`,
		merchantID, environment, currency).Scan(&account)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, ErrNoAccounts
	}
	if err != nil {
		return nil, 0, fmt.Errorf("statement account: %w", err)
	}
	if to.IsZero() {
		to = time.Now().Add(24 * time.Hour)
	}
	rows, err := q.Query(ctx, `SELECT e.id, e.kind, e.disbursement_id, e.memo, e.created_at, p.amount, coalesce(d.amount, 0)
		FROM postings p JOIN journal_entries e ON e.id = p.entry_id
		LEFT JOIN disbursements d ON d.id = e.disbursement_id
		WHERE p.account_id = $1 AND p.entry_id > $2 AND e.created_at >= $3 AND e.created_at < $4
		ORDER BY p.entry_id LIMIT $5`, account, afterEntry, from, to, limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("statement: %w", err)
	}
	type entry struct {
		id            int64
		kind, memo    string
		disbursement  *string
		at            time.Time
		amount, payed int64
	}
	var entries []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.id, &e.kind, &e.disbursement, &e.memo, &e.at, &e.amount, &e.payed); err != nil {
			rows.Close()
			return nil, 0, err
		}
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	next := int64(0)
	if len(entries) > limit {
		entries = entries[:limit]
		next = entries[limit-1].id
	}
	out := []StatementLine{}
	if len(entries) == 0 {
		return out, 0, nil
	}
	// The balance before the page: every earlier posting of the account.
	var balance int64
	if err := q.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM postings WHERE account_id = $1 AND entry_id < $2`,
		account, entries[0].id).Scan(&balance); err != nil {
		return nil, 0, fmt.Errorf("statement opening balance: %w", err)
	}
	line := func(e entry, n int, typ string, amount int64) {
		balance += amount
		out = append(out, StatementLine{ID: "bt_" + strconv.FormatInt(e.id, 10) + "_" + strconv.Itoa(n), Type: typ,
			DisbursementID: e.disbursement, Amount: amount, BalanceAfter: balance, Currency: currency, Memo: e.memo, CreatedAt: e.at.UTC()})
	}
	for _, e := range entries {
		switch e.kind {
		case "debit":
			// amount + fee leave in one posting: show them apart.
			line(e, 1, MovePayout, -e.payed)
			line(e, 2, MoveFee, e.amount+e.payed)
		case "deposit":
			line(e, 1, MoveTopUp, e.amount)
		case "fail":
			line(e, 1, MoveRefund, e.amount)
		case "cancel":
			line(e, 1, MoveCancel, e.amount)
		case "return":
			line(e, 1, MoveReturn, e.amount)
		case "invoice_payment":
			line(e, 1, MoveInvoicePayment, e.amount)
		default:
			line(e, 1, MoveAdjustment, e.amount)
		}
	}
	return out, next, nil
}
