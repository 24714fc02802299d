// Package inquiry answers bulk account inquiries (issue 14, item 5): a
// merchant submits up to MaxItems accounts, gets a job id at once, and
// reads the answers by GET or receives them by callback when the job ends.
//
// Data flow: the API stores the job and its items (Store.Create). Runner,
// run by every API instance, leases one open job at a time (a lease renewed
// while it works, so a crashed instance's job is taken over within
// LeaseFor), answers its unanswered items from the environment's recent
// definite answers (the cache, kept in Postgres per environment, so sandbox
// and production never share one) or by asking the environment's bank
// connector, whose Guard applies each bank's rate limit, breaker and
// bulkhead, and records each answer as it comes. When every item is
// answered the job is COMPLETED and an account_inquiry.completed callback
// is recorded.
package inquiry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MaxItems is the most accounts one job holds.
const MaxItems = 1000

// Job statuses.
const (
	StatusPending   = "PENDING"
	StatusRunning   = "RUNNING"
	StatusCompleted = "COMPLETED"
)

// ErrNotFound: no such job in the environment.
var ErrNotFound = errors.New("inquiry: not found")

// Account is one account to ask about.
type Account struct {
	BankCode      string `json:"bank_code"`
	AccountNumber string `json:"account_number"`
}

// Result is one account's answer (Status empty until answered).
type Result struct {
	Row               int        `json:"row"`
	BankCode          string     `json:"bank_code"`
	AccountNumber     string     `json:"account_number"`
	Status            *string    `json:"status"`
	AccountHolderName string     `json:"account_holder_name"`
	FromCache         bool       `json:"from_cache"`
	AnsweredAt        *time.Time `json:"answered_at"`
}

// Job is a bulk inquiry as the API shows it.
type Job struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	ItemCount   int        `json:"item_count"`
	Answered    int        `json:"answered"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Results     []Result   `json:"results,omitempty"`
	MerchantID  string     `json:"-"`
	Environment string     `json:"-"`
}

// Store keeps jobs in Postgres.
type Store struct{ db *pgxpool.Pool }

// NewStore returns a store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "inq_" + hex.EncodeToString(b)
}

// Create stores a job of accounts (checked by the caller) and returns it.
func (s *Store) Create(ctx context.Context, merchantID, environment string, accounts []Account, now time.Time) (Job, error) {
	j := Job{ID: newID(), Status: StatusPending, ItemCount: len(accounts), CreatedAt: now.UTC(), MerchantID: merchantID, Environment: environment}
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO account_inquiry_jobs (id, merchant_id, environment, status, item_count, created_at)
			VALUES ($1, $2, $3, 'PENDING', $4, $5)`, j.ID, merchantID, environment, len(accounts), j.CreatedAt); err != nil {
			return err
		}
		banks, numbers := make([]string, len(accounts)), make([]string, len(accounts))
		for i, a := range accounts {
			banks[i], numbers[i] = a.BankCode, a.AccountNumber
		}
		_, err := tx.Exec(ctx, `INSERT INTO account_inquiry_items (job_id, row, merchant_id, environment, bank_code, account_number)
			SELECT $1, n, $2, $3, b, a FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS u(b, a, n)`,
			j.ID, merchantID, environment, banks, numbers)
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("create inquiry job: %w", err)
	}
	return j, nil
}

const jobColumns = `id, status, item_count, answered, created_at, completed_at, merchant_id, environment`

func scanJob(row pgx.Row) (Job, error) {
	var j Job
	err := row.Scan(&j.ID, &j.Status, &j.ItemCount, &j.Answered, &j.CreatedAt, &j.CompletedAt, &j.MerchantID, &j.Environment)
	return j, err
}

// Get reads a job of the environment with every result, in row order.
func (s *Store) Get(ctx context.Context, merchantID, environment, id string) (Job, error) {
	j, err := scanJob(s.db.QueryRow(ctx, `SELECT `+jobColumns+` FROM account_inquiry_jobs
		WHERE id = $1 AND merchant_id = $2 AND environment = $3`, id, merchantID, environment))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, err
	}
	if j.Results, err = s.results(ctx, id); err != nil {
		return Job{}, err
	}
	j.Answered = 0
	for _, r := range j.Results {
		if r.Status != nil {
			j.Answered++
		}
	}
	return j, nil
}

func (s *Store) results(ctx context.Context, id string) ([]Result, error) {
	rows, err := s.db.Query(ctx, `SELECT row, bank_code, account_number, status, account_holder_name, from_cache, answered_at
		FROM account_inquiry_items WHERE job_id = $1 ORDER BY row`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Result, error) {
		var res Result
		err := r.Scan(&res.Row, &res.BankCode, &res.AccountNumber, &res.Status, &res.AccountHolderName, &res.FromCache, &res.AnsweredAt)
		return res, err
	})
}
