package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier is what the read functions need: a pool or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadBalance is Store.Balance read through q, so a caller's transaction
// sees its own uncommitted movements (an operator top-up answers the
// balance it made, and replays exactly that answer).
func ReadBalance(ctx context.Context, q Querier, merchantID, environment, currency string) (Balance, error) {
	b := Balance{Environment: environment, Currency: currency}
	var creditLimit, invoice, receivable int64
	var periodStart *time.Time
	err := q.QueryRow(ctx, `SELECT me.billing, me.credit_limit,
			coalesce(sum(a.balance) FILTER (WHERE a.kind = 'available'), 0),
			coalesce(sum(a.balance) FILTER (WHERE a.kind = 'in_flight'), 0),
			coalesce(sum(a.balance) FILTER (WHERE a.kind = 'invoice'), 0),
			coalesce(sum(a.balance) FILTER (WHERE a.kind = 'receivable'), 0),
			(SELECT period_start FROM invoices i WHERE i.merchant_id = me.merchant_id
				AND i.environment = me.environment AND i.currency = $3 AND i.status = 'OPEN')
		FROM merchant_environments me
		LEFT JOIN accounts a ON a.merchant_id = me.merchant_id AND a.environment = me.environment AND a.currency = $3
		WHERE me.merchant_id = $1 AND me.environment = $2
		GROUP BY me.merchant_id, me.environment, me.billing, me.credit_limit`, merchantID, environment, currency).
		Scan(&b.Billing, &creditLimit, &b.Available, &b.Pending, &invoice, &receivable, &periodStart)
	if errors.Is(err, pgx.ErrNoRows) {
		return Balance{}, ErrNoAccounts
	}
	if err != nil {
		return Balance{}, err
	}
	if b.Billing == "invoice" {
		inv := &InvoiceBalance{Used: -invoice, Unpaid: -receivable, CreditLimit: creditLimit}
		inv.LimitRemaining = creditLimit + invoice + receivable
		if periodStart != nil {
			inv.PeriodStart = *periodStart
		}
		b.Invoice = inv
		b.Available = inv.LimitRemaining
	}
	return b, nil
}
