package inquiry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/connectors"
)

var answers = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "disburse_inquiry_answers_total",
	Help: "Accounts of bulk account inquiries answered, by source: cache (an earlier answer of the environment) or bank.",
}, []string{"source"})

// TypeCompleted is the callback type of a finished job.
const TypeCompleted = "account_inquiry.completed"

// Runner answers open jobs.
type Runner struct {
	Store *Store
	// Bank is the environment's connector (with its Guard: rate limits,
	// breaker, bulkhead); nil for an environment this instance cannot ask.
	Bank      func(environment string) connectors.Connector
	Callbacks *callbacks.Store
	Log       *slog.Logger
	// CacheFor is how long a definite answer serves later jobs of the same
	// environment (default 1h); Workers how many accounts are asked at once
	// (default 8); LeaseFor how long a job's lease lasts unrenewed
	// (default 30s); Every how often to look for open jobs (default 500ms).
	CacheFor time.Duration
	Workers  int
	LeaseFor time.Duration
	Every    time.Duration

	owner string
}

func (r *Runner) defaults() {
	if r.CacheFor <= 0 {
		r.CacheFor = time.Hour
	}
	if r.Workers <= 0 {
		r.Workers = 8
	}
	if r.LeaseFor <= 0 {
		r.LeaseFor = 30 * time.Second
	}
	if r.Every <= 0 {
		r.Every = 500 * time.Millisecond
	}
	if r.owner == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		r.owner = "inq-" + hex.EncodeToString(b)
	}
}

// Run answers jobs until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	r.defaults()
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		for {
			worked, err := r.Once(ctx)
			if err != nil && ctx.Err() == nil {
				r.Log.Warn("inquiry job failed; it is retried", "err", err)
			}
			if !worked || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once leases one open job and works it to the end (or until its lease or
// ctx is lost); worked is false when there was none.
func (r *Runner) Once(ctx context.Context) (worked bool, err error) {
	r.defaults()
	j, ok, err := r.lease(ctx)
	if err != nil || !ok {
		return false, err
	}
	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lost sync.Once
	go func() { // renew the lease while the job runs
		t := time.NewTicker(r.LeaseFor / 3)
		defer t.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-t.C:
				tag, err := r.Store.db.Exec(jobCtx, `UPDATE account_inquiry_jobs SET lease_until = now() + make_interval(secs => $3)
					WHERE id = $1 AND lease_owner = $2`, j.ID, r.owner, r.LeaseFor.Seconds())
				if err == nil && tag.RowsAffected() == 0 {
					lost.Do(cancel)
				}
			}
		}
	}()
	return true, r.work(jobCtx, j)
}

// lease takes the oldest open job whose lease is free.
func (r *Runner) lease(ctx context.Context) (Job, bool, error) {
	j, err := scanJob(r.Store.db.QueryRow(ctx, `UPDATE account_inquiry_jobs SET status = 'RUNNING', lease_owner = $1,
			lease_until = now() + make_interval(secs => $2)
		WHERE id = (SELECT id FROM account_inquiry_jobs WHERE status <> 'COMPLETED' AND (lease_until IS NULL OR lease_until < now())
			ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, r.owner, r.LeaseFor.Seconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, false, nil
	}
	return j, err == nil, err
}

type item struct {
	row           int
	bank, account string
}

// work answers a job's unanswered items: first from the environment's
// cache in one statement, then from the bank, Workers at a time.
func (r *Runner) work(ctx context.Context, j Job) error {
	cached, err := r.Store.db.Exec(ctx, `UPDATE account_inquiry_items i SET status = c.status, account_holder_name = c.name,
			from_cache = true, answered_at = now()
		FROM (SELECT DISTINCT ON (p.row) p.row, h.status, h.account_holder_name AS name
			FROM account_inquiry_items p JOIN account_inquiry_items h
				ON h.merchant_id = p.merchant_id AND h.environment = p.environment AND h.bank_code = p.bank_code
				AND h.account_number = p.account_number AND h.status IN ('VALID', 'INVALID', 'CLOSED')
				AND h.answered_at > now() - make_interval(secs => $2)
			WHERE p.job_id = $1 AND p.status IS NULL
			ORDER BY p.row, h.answered_at DESC) c
		WHERE i.job_id = $1 AND i.row = c.row AND i.status IS NULL`, j.ID, r.CacheFor.Seconds())
	if err != nil {
		return err
	}
	answers.WithLabelValues("cache").Add(float64(cached.RowsAffected()))
	rows, err := r.Store.db.Query(ctx, `SELECT row, bank_code, account_number FROM account_inquiry_items
		WHERE job_id = $1 AND status IS NULL ORDER BY row`, j.ID)
	if err != nil {
		return err
	}
	todo, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (item, error) {
		var it item
		err := row.Scan(&it.row, &it.bank, &it.account)
		return it, err
	})
	if err != nil {
		return err
	}
	var bank connectors.Connector
	if r.Bank != nil {
		bank = r.Bank(j.Environment)
	}
	if len(todo) > 0 && bank == nil {
		return errors.New("no bank connector for " + j.Environment + " on this instance")
	}
	work := make(chan item)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for range r.Workers {
		wg.Go(func() {
			for it := range work {
				if err := r.ask(ctx, bank, j, it); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, it := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- it
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return r.finish(ctx, j)
}

// ask asks the bank about one account and records the answer. A bank that
// cannot be asked answers UNKNOWN (as POST /v1/account-inquiry says 503): a
// job ends, and its caller may ask again.
func (r *Runner) ask(ctx context.Context, bank connectors.Connector, j Job, it item) error {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	inq, err := bank.Inquire(actx, it.bank, it.account)
	cancel()
	status := inq.Status
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.Log.Warn("bulk inquiry: the bank could not be asked", "job_id", j.ID, "bank", it.bank, "err", err)
		status, inq.AccountHolderName = connectors.InquiryUnknown, ""
	}
	answers.WithLabelValues("bank").Inc()
	_, err = r.Store.db.Exec(ctx, `UPDATE account_inquiry_items SET status = $3, account_holder_name = $4, answered_at = now()
		WHERE job_id = $1 AND row = $2 AND status IS NULL`, j.ID, it.row, status, inq.AccountHolderName)
	return err
}

// finish completes the job (if this runner still holds it) and records its
// callback.
func (r *Runner) finish(ctx context.Context, j Job) error {
	done, err := scanJob(r.Store.db.QueryRow(ctx, `UPDATE account_inquiry_jobs SET status = 'COMPLETED', completed_at = now(),
			answered = (SELECT count(*) FROM account_inquiry_items WHERE job_id = $1 AND status IS NOT NULL), lease_owner = NULL, lease_until = NULL
		WHERE id = $1 AND lease_owner = $2 AND status <> 'COMPLETED' RETURNING `+jobColumns, j.ID, r.owner))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // another runner took it over and finished it
	}
	if err != nil {
		return err
	}
	if done.Results, err = r.Store.results(ctx, j.ID); err != nil {
		return err
	}
	r.Log.Info("bulk account inquiry completed", "job_id", j.ID, "merchant_id", j.MerchantID, "environment", j.Environment, "items", j.ItemCount)
	if r.Callbacks == nil {
		return nil
	}
	at := done.CompletedAt.UTC()
	id := callbacks.ID("account_inquiry", j.ID, 0)
	body, err := json.Marshal(struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		CreatedAt time.Time `json:"created_at"`
		Data      Job       `json:"data"`
	}{id, TypeCompleted, at, done})
	if err != nil {
		return err
	}
	_, err = r.Callbacks.Enqueue(ctx, []callbacks.New{{ID: id, MerchantID: j.MerchantID, Environment: j.Environment,
		Type: TypeCompleted, SubjectID: j.ID, Body: body, EventAt: at}})
	return err
}
