package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/disburse/disburse/payout"
)

// scope is one merchant environment in one currency: the unit that owns accounts.
type scope struct{ merchant, environment, currency string }

type envConfig struct {
	suspended    bool
	invoice      bool // invoice billing: spend against creditLimit, not the deposit
	creditLimit  int64
	feeFlat      int64
	feeBPS       int64
	maxPerPayout int64
	maxPerDay    int64
}

// ApplyDebits debits a polled batch of payout requests in one transaction,
// in the order given (the order of the requests topic, per merchant). A
// payout not PENDING (already debited, failed or cancelled) is left as it
// is, so a redelivered batch is a no-op. A payout that cannot be paid
// (insufficient balance, over a limit, merchant suspended) is FAILED without
// a debit and does not block the ones after it.
//
// It returns every payout of the batch in its state after the transaction,
// with changed marking those this call moved.
func (s *Store) ApplyDebits(ctx context.Context, ids []string) (out []payout.Disbursement, changed []bool, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	start := time.Now()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, changed, err = applyDebits(ctx, tx, ids, false)
		return err
	})
	if errors.Is(err, errBalanceMoved) {
		// A movement of the same accounts committed between the read and
		// the lock and the batch no longer fits: decide again, with the
		// accounts locked from the start.
		txRetries.WithLabelValues("balance_moved").Inc()
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			out, changed, err = applyDebits(ctx, tx, ids, true)
			return err
		})
	}
	if err == nil {
		batchSeconds.Observe(time.Since(start).Seconds())
	}
	return out, changed, err
}

// errBalanceMoved: under the lock, a funding account no longer covers what
// the batch decided on its unlocked read.
var errBalanceMoved = errors.New("ledger: balance moved since it was read")

// afterUnlockedRead, when set (tests only), runs between a debit's unlocked
// read of the balances and its lock: where a concurrent movement lands.
var afterUnlockedRead func()

func applyDebits(ctx context.Context, tx pgx.Tx, ids []string, lockFirst bool) ([]payout.Disbursement, []bool, error) {
	// 1. Lock the payouts, in id order.
	byID, err := payout.Locked(ctx, tx, ids)
	if err != nil {
		return nil, nil, err
	}
	scopes := map[scope]bool{}
	for _, d := range byID {
		if d.Status == payout.Pending {
			scopes[scope{d.MerchantID, d.Environment, d.Currency}] = true
		}
	}

	versions := make(map[string]int, len(byID))
	for id, d := range byID {
		versions[id] = d.Version
	}
	if len(scopes) > 0 {
		if err := debitPending(ctx, tx, ids, byID, scopes, lockFirst); err != nil {
			return nil, nil, err
		}
	}

	out := make([]payout.Disbursement, 0, len(ids))
	changed := make([]bool, 0, len(ids))
	seen := map[string]bool{}
	for _, id := range ids {
		d, ok := byID[id]
		if !ok || seen[id] {
			continue // unknown id (never created) or repeated in the batch
		}
		seen[id] = true
		out = append(out, d)
		changed = append(changed, d.Version != versions[id])
	}
	return out, changed, nil
}

// debitPending decides each PENDING payout in order and writes the outcome
// with a fixed number of statements, whatever the batch size.
//
// The merchant's account rows are shared by every movement of its money:
// this debit, the settle groups of its earlier payouts, cancels, top-ups.
// Held from the decision to the commit, they would make the settle groups
// wait for the whole debit and the debit for each whole group. So unless
// lockFirst (or a daily limit is set, which needs the day's total stable),
// the decision reads the balances without a lock, the entries, postings and
// status changes are written, and only then are the accounts locked and
// updated, followed by the batch progress, until the commit. Under the lock
// the decision is checked: what the batch takes from each funding account
// must still be covered by its balance now (money that arrived since only
// helps; a payout failed for a balance that grew since was failed on the
// balance it read). If not, errBalanceMoved, and ApplyDebits decides again
// with the accounts locked first.
func debitPending(ctx context.Context, tx pgx.Tx, ids []string, byID map[string]payout.Disbursement, scopes map[scope]bool, lockFirst bool) error {
	var merchants, envs, currencies []string
	for sc := range scopes {
		merchants = append(merchants, sc.merchant)
		envs = append(envs, sc.environment)
		currencies = append(currencies, sc.currency)
	}

	// 2. Settings of each merchant environment.
	configs := map[[2]string]envConfig{}
	rows, err := tx.Query(ctx, `SELECT me.merchant_id, me.environment, m.status = 'SUSPENDED',
			me.billing = 'invoice', me.credit_limit,
			me.fee_flat, me.fee_bps, me.max_per_payout, me.max_per_day
		FROM merchant_environments me JOIN merchants m ON m.id = me.merchant_id
		WHERE (me.merchant_id, me.environment) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, merchants, envs)
	if err != nil {
		return fmt.Errorf("read merchant settings: %w", err)
	}
	needDaily := false
	for rows.Next() {
		var m, e string
		var c envConfig
		if err := rows.Scan(&m, &e, &c.suspended, &c.invoice, &c.creditLimit, &c.feeFlat, &c.feeBPS, &c.maxPerPayout, &c.maxPerDay); err != nil {
			rows.Close()
			return err
		}
		configs[[2]string{m, e}] = c
		needDaily = needDaily || c.maxPerDay > 0
	}
	if err := rows.Err(); err != nil {
		return err
	}

	// 3. Read the accounts a debit touches or checks, in id order; locked
	// now only when asked (see above).
	lockFirst = lockFirst || needDaily
	type acct struct {
		id      int64
		balance int64
	}
	accounts := map[scope]map[string]*acct{}
	lockClause := ""
	if lockFirst {
		lockClause = " FOR NO KEY UPDATE"
	}
	rows, err = tx.Query(ctx, `SELECT id, merchant_id, environment, currency, kind, balance FROM accounts
		WHERE (merchant_id, environment, currency) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
		  AND kind IN ('available', 'in_flight', 'invoice', 'receivable')
		ORDER BY id`+lockClause, merchants, envs, currencies)
	if err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	for rows.Next() {
		var a acct
		var sc scope
		var kind string
		if err := rows.Scan(&a.id, &sc.merchant, &sc.environment, &sc.currency, &kind, &a.balance); err != nil {
			rows.Close()
			return err
		}
		if accounts[sc] == nil {
			accounts[sc] = map[string]*acct{}
		}
		accounts[sc][kind] = &a
	}
	if err := rows.Err(); err != nil {
		return err
	}
	read := map[int64]int64{}
	for _, accts := range accounts {
		for _, a := range accts {
			read[a.id] = a.balance
		}
	}
	if !lockFirst && afterUnlockedRead != nil {
		afterUnlockedRead()
	}

	// 4. What each environment already debited today (Asia/Jakarta days).
	dailyUsed := map[[2]string]int64{}
	if needDaily {
		rows, err = tx.Query(ctx, `SELECT merchant_id, environment, sum(amount) FROM disbursements
			WHERE (merchant_id, environment) IN (SELECT * FROM unnest($1::text[], $2::text[]))
			  AND debited_at >= (date_trunc('day', now() AT TIME ZONE 'Asia/Jakarta') AT TIME ZONE 'Asia/Jakarta')
			  AND status IN ('PROCESSING', 'COMPLETED', 'REVERSED')
			GROUP BY 1, 2`, merchants, envs)
		if err != nil {
			return fmt.Errorf("read daily totals: %w", err)
		}
		for rows.Next() {
			var m, e string
			var sum int64
			if err := rows.Scan(&m, &e, &sum); err != nil {
				rows.Close()
				return err
			}
			dailyUsed[[2]string{m, e}] = sum
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}

	// 5. Decide, in the order of the topic.
	var (
		updIDs, updStatus, updFailure []string
		updFunding                    []string
		updFee                        []int64
		entryIDs                      []string
		postAccount                   []int64
		postAmount                    []int64
		deltas                        = map[int64]int64{}
	)
	decided := map[string]bool{}
	for _, id := range ids {
		d, ok := byID[id]
		if !ok || d.Status != payout.Pending || decided[id] {
			continue
		}
		decided[id] = true
		sc := scope{d.MerchantID, d.Environment, d.Currency}
		key := [2]string{d.MerchantID, d.Environment}
		cfg, haveCfg := configs[key]
		accts := accounts[sc]
		funding := Available
		if cfg.invoice {
			funding = Invoice
		}
		av, fl := accts[funding], accts[InFlight]
		fee := cfg.feeFlat + d.Amount*cfg.feeBPS/10000
		// What the payout may spend: the deposit, or the credit left after
		// the open period and unpaid invoices.
		spendable := int64(0)
		if av != nil {
			spendable = av.balance
			if cfg.invoice && accts[Receivable] != nil {
				spendable = cfg.creditLimit + av.balance + accts[Receivable].balance
			}
		}
		failure := ""
		switch {
		case !haveCfg || av == nil || fl == nil:
			failure = payout.MerchantSuspended // environment not active: nothing to debit from
		case cfg.suspended:
			failure = payout.MerchantSuspended
		case cfg.maxPerPayout > 0 && d.Amount > cfg.maxPerPayout:
			failure = payout.AmountLimitExceeded
		case cfg.maxPerDay > 0 && dailyUsed[key]+d.Amount > cfg.maxPerDay:
			failure = payout.AmountLimitExceeded
		case cfg.invoice && spendable < d.Amount+fee:
			failure = payout.CreditLimitExceeded
		case spendable < d.Amount+fee:
			failure = payout.InsufficientBalance
		}
		updIDs = append(updIDs, id)
		updFee = append(updFee, fee)
		updFunding = append(updFunding, funding)
		if failure != "" {
			updStatus = append(updStatus, string(payout.Failed))
			updFailure = append(updFailure, failure)
			movements.WithLabelValues("rejected").Inc()
			continue
		}
		total := d.Amount + fee
		av.balance -= total
		fl.balance += total
		dailyUsed[key] += d.Amount
		deltas[av.id] -= total
		deltas[fl.id] += total
		updStatus = append(updStatus, string(payout.Processing))
		updFailure = append(updFailure, "")
		entryIDs = append(entryIDs, id)
		postAccount = append(postAccount, av.id, fl.id)
		postAmount = append(postAmount, -total, total)
		movements.WithLabelValues("debit").Inc()
	}

	// What each scope's debits need to stay covered (checkUnderLock).
	var covers []cover
	for sc, accts := range accounts {
		cfg := configs[[2]string{sc.merchant, sc.environment}]
		c := cover{}
		if cfg.invoice {
			if accts[Invoice] == nil || deltas[accts[Invoice].id] == 0 {
				continue
			}
			c.funding, c.creditLimit = accts[Invoice].id, cfg.creditLimit
			if accts[Receivable] != nil {
				c.receivable = accts[Receivable].id
			}
		} else {
			if accts[Available] == nil || deltas[accts[Available].id] == 0 {
				continue
			}
			c.funding = accts[Available].id
		}
		covers = append(covers, c)
	}

	// 6. Write: entries, postings, payouts; then, last, balances and batch
	// progress.
	var accountIDs, amounts []int64
	if len(entryIDs) > 0 {
		rows, err := tx.Query(ctx, `INSERT INTO journal_entries (kind, merchant_id, environment, currency, disbursement_id)
			SELECT 'debit', d.merchant_id, d.environment, d.currency, d.id
			FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) JOIN disbursements d ON d.id = u.id
			ORDER BY u.n
			RETURNING id, disbursement_id`, entryIDs)
		if err != nil {
			return fmt.Errorf("insert debit entries: %w", err)
		}
		entryOf := make(map[string]int64, len(entryIDs))
		for rows.Next() {
			var eid int64
			var did string
			if err := rows.Scan(&eid, &did); err != nil {
				rows.Close()
				return err
			}
			entryOf[did] = eid
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert debit entries: %w", err)
		}
		postEntry := make([]int64, 0, len(postAccount))
		for _, id := range entryIDs {
			postEntry = append(postEntry, entryOf[id], entryOf[id])
		}
		if _, err := tx.Exec(ctx, `INSERT INTO postings (entry_id, account_id, amount)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])`, postEntry, postAccount, postAmount); err != nil {
			return fmt.Errorf("insert debit postings: %w", err)
		}
		accountIDs = make([]int64, 0, len(deltas))
		for id := range deltas {
			accountIDs = append(accountIDs, id)
		}
		sort.Slice(accountIDs, func(i, j int) bool { return accountIDs[i] < accountIDs[j] })
		amounts = make([]int64, len(accountIDs))
		for i, id := range accountIDs {
			amounts[i] = deltas[id]
		}
	}
	if len(updIDs) == 0 {
		return nil
	}
	moves := make([]payout.Move, len(updIDs))
	for i := range updIDs {
		moves[i] = payout.Move{ID: updIDs[i], To: payout.Status(updStatus[i]), FailureCode: updFailure[i], Fee: updFee[i], FundedBy: updFunding[i]}
	}
	moved, progress, err := payout.MoveSet(ctx, tx, payout.Pending, moves)
	if err != nil {
		return err
	}
	for _, d := range moved {
		byID[d.ID] = d
	}
	n := len(moved)
	if n != len(updIDs) {
		return fmt.Errorf("ledger: %d of %d payouts changed under the lock", len(updIDs)-n, len(updIDs))
	}
	if len(accountIDs) > 0 {
		if !lockFirst {
			if err := checkUnderLock(ctx, tx, accountIDs, read, deltas, covers); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + p.x
			FROM unnest($1::bigint[], $2::bigint[]) AS p(a, x) WHERE accounts.id = p.a`, accountIDs, amounts); err != nil {
			return fmt.Errorf("update balances: %w", err)
		}
	}
	return progress.Apply(ctx, tx)
}

// cover is what must hold, under the lock, for one scope's debits to stand:
// funding's balance after them, plus the credit left for invoice billing
// (credit limit + receivable, itself negative), must not go below zero.
type cover struct {
	funding, receivable int64 // account ids; receivable 0 unless invoice billing
	creditLimit         int64
}

// checkUnderLock locks the accounts in id order and checks that every
// scope's debits are still covered by the balances now (errBalanceMoved
// if not).
func checkUnderLock(ctx context.Context, tx pgx.Tx, accountIDs []int64, read, deltas map[int64]int64, covers []cover) error {
	ids := append([]int64(nil), accountIDs...)
	for _, c := range covers {
		if c.receivable != 0 {
			ids = append(ids, c.receivable)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	rows, err := tx.Query(ctx, `SELECT id, balance FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, ids)
	if err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	now := map[int64]int64{}
	for rows.Next() {
		var id, b int64
		if err := rows.Scan(&id, &b); err != nil {
			rows.Close()
			return err
		}
		now[id] = b
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	for _, c := range covers {
		if now[c.funding] == read[c.funding] && now[c.receivable] == read[c.receivable] {
			continue // nothing moved: the decision was made on these balances
		}
		if c.creditLimit+now[c.funding]+deltas[c.funding]+now[c.receivable] < 0 {
			return errBalanceMoved
		}
	}
	return nil
}
