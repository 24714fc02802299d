package audit

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/reports"
)

// Reports reconciles the ClickHouse reports with Postgres: for every
// merchant environment, status and currency, the count, amount and fee
// of payouts in ClickHouse's latest-state table must equal the payouts
// table's, and the ledger's balances must equal the report totals
// (paid out = amount COMPLETED, fees = fee of COMPLETED and REVERSED, in
// flight = amount + fee PROCESSING), and the daily aggregates must count
// as many status changes as the ledger's event feed. PENDING payouts are not compared:
// they have not been debited and have no status event yet. Run it when
// the pipeline is idle; payouts in flight between the two stores show as
// differences.
func Reports(ctx context.Context, pool *pgxpool.Pool, st *reports.Store) (Report, error) {
	type key struct{ merchant, env, status, currency string }
	type sums struct{ count, amount, fee int64 }
	ch := map[key]sums{}
	totals, err := st.Totals(ctx)
	if err != nil {
		return Report{}, err
	}
	for _, t := range totals {
		ch[key{t.MerchantID, t.Environment, t.Status, t.Currency}] = sums{t.Count, t.Amount, t.Fee}
	}
	pg := map[key]sums{}
	rows, err := pool.Query(ctx, `SELECT merchant_id, environment, status, currency, count(*), sum(amount)::bigint, sum(fee)::bigint
		FROM disbursements WHERE status <> 'PENDING' GROUP BY 1, 2, 3, 4`)
	if err != nil {
		return Report{}, fmt.Errorf("payout totals: %w", err)
	}
	for rows.Next() {
		var k key
		var s sums
		if err := rows.Scan(&k.merchant, &k.env, &k.status, &k.currency, &s.count, &s.amount, &s.fee); err != nil {
			return Report{}, err
		}
		pg[k] = s
	}
	if err := rows.Err(); err != nil {
		return Report{}, err
	}
	var r Report
	keys := map[key]bool{}
	for k := range ch {
		keys[k] = true
	}
	for k := range pg {
		keys[k] = true
	}
	for k := range keys {
		r.Checks++
		if ch[k] != pg[k] {
			r.Violations = append(r.Violations, fmt.Sprintf(
				"reports: %s/%s %s %s: clickhouse has %d payouts, amount %d, fee %d; postgres has %d, %d, %d",
				k.merchant, k.env, k.status, k.currency, ch[k].count, ch[k].amount, ch[k].fee, pg[k].count, pg[k].amount, pg[k].fee))
		}
	}

	// The daily aggregates count every status change once: as many as the
	// ledger's event feed holds.
	changes, err := st.StatusChanges(ctx)
	if err != nil {
		return Report{}, err
	}
	type evKey struct{ merchant, env, status string }
	chEvents := map[evKey]int64{}
	for _, c := range changes {
		chEvents[evKey{c.MerchantID, c.Environment, c.Status}] += c.Count
	}
	pgEvents := map[evKey]int64{}
	erows, err := pool.Query(ctx, `SELECT merchant_id, environment, status, count(*) FROM payout_events
		WHERE status <> 'PENDING' GROUP BY 1, 2, 3`)
	if err != nil {
		return Report{}, fmt.Errorf("event totals: %w", err)
	}
	for erows.Next() {
		var k evKey
		var n int64
		if err := erows.Scan(&k.merchant, &k.env, &k.status, &n); err != nil {
			return Report{}, err
		}
		pgEvents[k] = n
	}
	if err := erows.Err(); err != nil {
		return Report{}, err
	}
	evKeys := map[evKey]bool{}
	for k := range chEvents {
		evKeys[k] = true
	}
	for k := range pgEvents {
		evKeys[k] = true
	}
	for k := range evKeys {
		r.Checks++
		if chEvents[k] != pgEvents[k] {
			r.Violations = append(r.Violations, fmt.Sprintf(
				"reports: %s/%s: the daily aggregates count %d changes to %s, the ledger's event feed %d",
				k.merchant, k.env, chEvents[k], k.status, pgEvents[k]))
		}
	}

	// The ledger's balances against the report totals.
	type acct struct{ merchant, env, currency string }
	want := map[acct]map[string]int64{}
	add := func(a acct, kind string, v int64) {
		if want[a] == nil {
			want[a] = map[string]int64{"paid_out": 0, "fees": 0, "in_flight": 0}
		}
		want[a][kind] += v
	}
	for k, s := range ch {
		a := acct{k.merchant, k.env, k.currency}
		switch k.status {
		case "COMPLETED":
			add(a, "paid_out", s.amount)
			add(a, "fees", s.fee)
		case "REVERSED":
			add(a, "fees", s.fee)
		case "PROCESSING":
			add(a, "in_flight", s.amount+s.fee)
		default:
			add(a, "paid_out", 0)
		}
	}
	brows, err := pool.Query(ctx, `SELECT merchant_id, environment, currency, kind, balance FROM accounts
		WHERE kind IN ('paid_out', 'fees', 'in_flight')`)
	if err != nil {
		return Report{}, fmt.Errorf("ledger balances: %w", err)
	}
	got := map[acct]map[string]int64{}
	for brows.Next() {
		var a acct
		var kind string
		var bal int64
		if err := brows.Scan(&a.merchant, &a.env, &a.currency, &kind, &bal); err != nil {
			return Report{}, err
		}
		if got[a] == nil {
			got[a] = map[string]int64{}
		}
		got[a][kind] = bal
	}
	if err := brows.Err(); err != nil {
		return Report{}, err
	}
	for a, kinds := range want {
		for kind, v := range kinds {
			r.Checks++
			if got[a][kind] != v {
				r.Violations = append(r.Violations, fmt.Sprintf(
					"reports: %s/%s %s %s: ledger balance %d, report totals say %d", a.merchant, a.env, a.currency, kind, got[a][kind], v))
			}
		}
	}
	sort.Strings(r.Violations)
	return r, nil
}
