package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/internal/retry"
)

// Account kinds.
const (
	Deposits  = "deposits"
	Available = "available"
	InFlight  = "in_flight"
	PaidOut   = "paid_out"
	Fees      = "fees"
	// Invoice billing: what payouts of the open period used (negative).
	Invoice = "invoice"
	// Receivable: issued invoices not yet paid (negative).
	Receivable = "receivable"
)

var accountKinds = []string{Deposits, Available, InFlight, PaidOut, Fees, Invoice, Receivable}

var (
	txRetries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_ledger_tx_retries_total",
		Help: "Ledger transactions retried after a deadlock or serialization failure, or (reason balance_moved) a debit batch decided again with its accounts locked first because a funding balance fell between its read and its lock.",
	}, []string{"reason"})
	movements = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_ledger_movements_total",
		Help: "Payout state changes applied by the ledger, by kind (debit, settle, fail, return, rejected).",
	}, []string{"kind"})
	batchSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "disburse_ledger_debit_batch_seconds",
		Help:    "Time to apply one polled batch of debits in one transaction.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
)

// ErrNoAccounts: the merchant's environment has no ledger accounts (not activated).
var ErrNoAccounts = errors.New("ledger: environment not activated")

// Store applies money movements in Postgres.
type Store struct {
	db      *pgxpool.Pool
	backoff retry.Backoff
}

// NewStore returns a ledger on db.
func NewStore(db *pgxpool.Pool) *Store {
	return &Store{db: db, backoff: retry.Backoff{Base: 5 * time.Millisecond, Max: 200 * time.Millisecond}}
}

// DB is the pool the store writes to, for callers that need one transaction
// across the ledger and their own rows (activation).
func (s *Store) DB() *pgxpool.Pool { return s.db }

// inTx runs fn in a transaction, retrying deadlocks and serialization failures.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return retry.Do(ctx, s.backoff, 8, retryableTx, countRetry, func() error {
		return pgx.BeginFunc(ctx, s.db, fn)
	})
}

func retryableTx(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

func countRetry(err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
		txRetries.WithLabelValues("deadlock").Inc()
		return
	}
	txRetries.WithLabelValues("serialization").Inc()
}

// OpenAccounts creates the environment's accounts in currency (idempotent).
func OpenAccounts(ctx context.Context, tx pgx.Tx, merchantID, environment, currency string) error {
	_, err := tx.Exec(ctx, `INSERT INTO accounts (merchant_id, environment, kind, currency)
		SELECT $1, $2, k, $3 FROM unnest($4::text[]) AS k
		ON CONFLICT DO NOTHING`, merchantID, environment, currency, accountKinds)
	if err != nil {
		return fmt.Errorf("open accounts: %w", err)
	}
	return nil
}

// Deposit records money coming into the merchant's environment, inside tx.
func Deposit(ctx context.Context, tx pgx.Tx, merchantID, environment, currency string, amount int64, memo string) error {
	if amount <= 0 {
		return fmt.Errorf("deposit amount must be positive, got %d", amount)
	}
	return post(ctx, tx, "deposit", merchantID, environment, currency, nil, memo, map[string]int64{
		Deposits:  -amount,
		Available: amount,
	})
}

// Deposit records a top-up in its own transaction.
func (s *Store) Deposit(ctx context.Context, merchantID, environment, currency string, amount int64, memo string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		return Deposit(ctx, tx, merchantID, environment, currency, amount, memo)
	})
}

// post writes one balanced entry and updates the balances, locking the
// accounts in id order.
func post(ctx context.Context, tx pgx.Tx, kind, merchantID, environment, currency string, disbursementID *string, memo string, legs map[string]int64) error {
	var sum int64
	kinds := make([]string, 0, len(legs))
	amounts := make([]int64, 0, len(legs))
	for k, a := range legs {
		sum += a
		kinds = append(kinds, k)
		amounts = append(amounts, a)
	}
	if sum != 0 {
		return fmt.Errorf("ledger: unbalanced %s entry (sums to %d)", kind, sum)
	}
	rows, err := tx.Query(ctx, `SELECT id, kind FROM accounts
		WHERE merchant_id = $1 AND environment = $2 AND currency = $3 AND kind = ANY($4)
		ORDER BY id FOR NO KEY UPDATE`, merchantID, environment, currency, kinds)
	if err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	ids := map[string]int64{}
	for rows.Next() {
		var id int64
		var k string
		if err := rows.Scan(&id, &k); err != nil {
			return err
		}
		ids[k] = id
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ids) != len(legs) {
		return ErrNoAccounts
	}
	var entryID int64
	err = tx.QueryRow(ctx, `INSERT INTO journal_entries (kind, merchant_id, environment, currency, disbursement_id, memo)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, kind, merchantID, environment, currency, disbursementID, memo).Scan(&entryID)
	if err != nil {
		return fmt.Errorf("insert %s entry: %w", kind, err)
	}
	accountIDs := make([]int64, len(kinds))
	for i, k := range kinds {
		accountIDs[i] = ids[k]
	}
	if _, err := tx.Exec(ctx, `INSERT INTO postings (entry_id, account_id, amount)
		SELECT $1, a, x FROM unnest($2::bigint[], $3::bigint[]) AS p(a, x)`, entryID, accountIDs, amounts); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + p.x
		FROM unnest($1::bigint[], $2::bigint[]) AS p(a, x) WHERE accounts.id = p.a`, accountIDs, amounts); err != nil {
		return fmt.Errorf("update balances: %w", err)
	}
	return nil
}

// Balance is what GET /v1/balance shows. For invoice billing, available is
// the credit left and Invoice gives the period's figures.
type Balance struct {
	Environment string          `json:"environment"`
	Currency    string          `json:"currency"`
	Available   int64           `json:"available"`
	Pending     int64           `json:"pending"`
	Billing     string          `json:"billing"`
	Invoice     *InvoiceBalance `json:"invoice,omitempty"`
}

// Balance reads the environment's balances.
func (s *Store) Balance(ctx context.Context, merchantID, environment, currency string) (Balance, error) {
	return ReadBalance(ctx, s.db, merchantID, environment, currency)
}
