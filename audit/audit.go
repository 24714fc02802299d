// Package audit checks the money invariants of disburse on a database and
// reports every violation in words an operator can act on. `disburse audit`
// runs it; every integration test that moves money ends with it.
//
// The checks:
//   - every journal entry's postings sum to zero, and every account balance
//     equals the sum of its postings;
//   - the ledger sums to zero per currency, and per merchant environment
//     (deposits = available + in flight + paid out + fees);
//   - no available or in-flight balance is negative;
//   - each payout's journal entries match its status (a debit for each
//     payout past PENDING unless it was refused, a settle for each COMPLETED,
//     a fail for each debited FAILED, a return for each REVERSED), and in
//     flight equals the payouts still PROCESSING;
//   - every status change of a payout is in the event feed, once;
//   - no payout was sent to its bank more than once;
//   - no payout has been PENDING or PROCESSING longer than a threshold.
package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune the checks.
type Options struct {
	// StuckAfter flags payouts not terminal after this long (0: 1 hour).
	StuckAfter time.Duration
}

// Report is the outcome of a run.
type Report struct {
	Checks     int
	Violations []string
}

// OK reports whether every invariant held.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// String is the readable report.
func (r Report) String() string {
	if r.OK() {
		return fmt.Sprintf("audit: all %d checks passed", r.Checks)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "audit: %d violation(s) in %d checks:\n", len(r.Violations), r.Checks)
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  - %s\n", v)
	}
	return b.String()
}

type check struct {
	name  string
	query string
	// describe turns one result row into a sentence.
	describe func(vals []any) string
}

// Run executes every check.
func Run(ctx context.Context, db *pgxpool.Pool, opts Options) (Report, error) {
	if opts.StuckAfter <= 0 {
		opts.StuckAfter = time.Hour
	}
	checks := []check{
		{"entry balanced", `SELECT entry_id, sum(amount) FROM postings GROUP BY entry_id HAVING sum(amount) <> 0 LIMIT 20`,
			func(v []any) string {
				return fmt.Sprintf("journal entry %v does not balance: its postings sum to %v", v[0], v[1])
			}},
		{"balance equals postings", `SELECT a.id, a.merchant_id, a.environment, a.kind, a.balance, coalesce(p.s, 0)
			FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS s FROM postings GROUP BY account_id) p ON p.account_id = a.id
			WHERE a.balance <> coalesce(p.s, 0) LIMIT 20`,
			func(v []any) string {
				return fmt.Sprintf("account %v (%v %v %v) shows balance %v but its postings sum to %v", v[0], v[1], v[2], v[3], v[4], v[5])
			}},
		{"ledger sums to zero per currency", `SELECT currency, sum(balance) FROM accounts GROUP BY currency HAVING sum(balance) <> 0`,
			func(v []any) string { return fmt.Sprintf("the %v ledger sums to %v, not zero", v[0], v[1]) }},
		{"money conserved per merchant", `SELECT merchant_id, environment, currency,
				-sum(balance) FILTER (WHERE kind = 'deposits'),
				sum(balance) FILTER (WHERE kind <> 'deposits')
			FROM accounts GROUP BY 1, 2, 3 HAVING sum(balance) <> 0`,
			func(v []any) string {
				return fmt.Sprintf("merchant %v %v %v: deposits %v but available + in flight + paid out + fees + invoice accounts = %v", v[0], v[1], v[2], v[3], v[4])
			}},
		{"no negative balance", `SELECT merchant_id, environment, kind, balance FROM accounts
			WHERE kind IN ('available', 'in_flight', 'paid_out', 'fees') AND balance < 0 LIMIT 20`,
			func(v []any) string {
				return fmt.Sprintf("merchant %v %v: %v balance is negative (%v)", v[0], v[1], v[2], v[3])
			}},
		{"entries match payout status", `SELECT d.id, d.status, d.failure_code,
				count(*) FILTER (WHERE e.kind = 'debit'), count(*) FILTER (WHERE e.kind = 'settle'),
				count(*) FILTER (WHERE e.kind = 'fail'), count(*) FILTER (WHERE e.kind = 'return')
			FROM disbursements d LEFT JOIN journal_entries e ON e.disbursement_id = d.id
			GROUP BY d.id, d.status, d.failure_code
			HAVING NOT (
				(d.status IN ('PENDING', 'CANCELLED') AND count(e.id) = 0)
				OR (d.status = 'CANCELLED' AND count(*) FILTER (WHERE e.kind = 'debit') = 1
					AND count(*) FILTER (WHERE e.kind = 'cancel') = 1 AND count(e.id) = 2)
				OR (d.status = 'PROCESSING' AND count(*) FILTER (WHERE e.kind = 'debit') = 1 AND count(e.id) = 1)
				OR (d.status = 'COMPLETED' AND count(*) FILTER (WHERE e.kind = 'debit') = 1
					AND count(*) FILTER (WHERE e.kind = 'settle') = 1 AND count(e.id) = 2)
				OR (d.status = 'FAILED' AND count(e.id) = 0)
				OR (d.status = 'FAILED' AND count(*) FILTER (WHERE e.kind = 'debit') = 1
					AND count(*) FILTER (WHERE e.kind = 'fail') = 1 AND count(e.id) = 2)
				OR (d.status = 'REVERSED' AND count(*) FILTER (WHERE e.kind = 'debit') = 1
					AND count(*) FILTER (WHERE e.kind = 'settle') = 1 AND count(*) FILTER (WHERE e.kind = 'return') = 1 AND count(e.id) = 3)
			) LIMIT 20`,
			func(v []any) string {
				return fmt.Sprintf("payout %v is %v (%v) but has %v debit, %v settle, %v fail, %v return entries", v[0], v[1], v[2], v[3], v[4], v[5], v[6])
			}},
		{"in flight equals processing payouts", `SELECT a.merchant_id, a.environment, a.currency, a.balance, coalesce(p.s, 0)
			FROM accounts a LEFT JOIN (
				SELECT merchant_id, environment, currency, sum(amount + fee) AS s FROM disbursements
				WHERE status = 'PROCESSING' GROUP BY 1, 2, 3) p
			ON (p.merchant_id, p.environment, p.currency) = (a.merchant_id, a.environment, a.currency)
			WHERE a.kind = 'in_flight' AND a.balance <> coalesce(p.s, 0)`,
			func(v []any) string {
				return fmt.Sprintf("merchant %v %v %v: in flight is %v but PROCESSING payouts total %v", v[0], v[1], v[2], v[3], v[4])
			}},
		{"every status change recorded once", `SELECT d.id, d.version, count(e.id), count(DISTINCT e.version)
			FROM disbursements d LEFT JOIN payout_events e ON e.disbursement_id = d.id
			GROUP BY d.id, d.version HAVING count(e.id) <> d.version OR max(e.version) IS DISTINCT FROM d.version LIMIT 20`,
			func(v []any) string {
				return fmt.Sprintf("payout %v is at version %v but the event feed has %v change(s)", v[0], v[1], v[2])
			}},
		{"sent to the bank at most once", `SELECT disbursement_id, count(*) FROM bank_calls
			WHERE kind = 'transfer' AND outcome NOT IN ('not_sent', 'not_received')
			GROUP BY disbursement_id HAVING count(*) > 1 LIMIT 20`,
			func(v []any) string { return fmt.Sprintf("payout %v was sent to its bank %v times", v[0], v[1]) }},
		{"nothing stuck", fmt.Sprintf(`SELECT id, status, updated_at FROM disbursements
			WHERE status IN ('PENDING', 'PROCESSING') AND updated_at < now() - interval '%d seconds'
			ORDER BY updated_at LIMIT 20`, int(opts.StuckAfter.Seconds())),
			func(v []any) string {
				return fmt.Sprintf("payout %v has been %v since %v (longer than %s)", v[0], v[1], v[2], opts.StuckAfter)
			}},
	}
	var r Report
	for _, c := range checks {
		r.Checks++
		rows, err := db.Query(ctx, c.query)
		if err != nil {
			return r, fmt.Errorf("audit check %q: %w", c.name, err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return r, err
			}
			r.Violations = append(r.Violations, c.name+": "+c.describe(vals))
		}
		if err := rows.Err(); err != nil {
			return r, fmt.Errorf("audit check %q: %w", c.name, err)
		}
	}
	return r, nil
}
