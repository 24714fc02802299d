package callbacks

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/payout"
)

var (
	// ErrNotFound: no such callback in the caller's environment.
	ErrNotFound = errors.New("callbacks: not found")
	// ErrNoEnvironment: the merchant environment does not exist.
	ErrNoEnvironment = errors.New("callbacks: no such merchant environment")
)

// Delivery statuses.
const (
	Pending   = "pending"
	Delivered = "delivered"
	Failed    = "failed"
)

// Default retention rules.
const (
	DefaultRetryFor    = 72 * time.Hour
	DefaultSecretGrace = 24 * time.Hour
)

// Store keeps callbacks, their attempts and the signing secrets in Postgres.
type Store struct {
	db *pgxpool.Pool
	// RetryFor is how long a callback is retried before it is failed
	// (default 72h: API.md's "at least 3 days").
	RetryFor time.Duration
	// SecretGrace is how long a rotated-out secret keeps signing (default 24h).
	SecretGrace time.Duration
}

// NewStore returns a store on db with the default rules.
func NewStore(db *pgxpool.Pool) *Store {
	return &Store{db: db, RetryFor: DefaultRetryFor, SecretGrace: DefaultSecretGrace}
}

// Enqueue records callbacks to deliver, each once: a callback id already
// recorded is skipped, so a redelivered event changes nothing. Callbacks of
// environments without a callback_url are not recorded (the events feed
// still has the change). Each callback takes the request id of what it
// announces (the payout's or the batch's X-Request-Id), for its delivery
// logs and its POST. It returns how many were recorded.
func (s *Store) Enqueue(ctx context.Context, cbs []New) (int, error) {
	if len(cbs) == 0 {
		return 0, nil
	}
	n := len(cbs)
	ids, merchants, envs, types, subjects := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	bodies, ats := make([][]byte, n), make([]time.Time, n)
	for i, c := range cbs {
		ids[i], merchants[i], envs[i], types[i], subjects[i], bodies[i], ats[i] = c.ID, c.MerchantID, c.Environment, c.Type, c.SubjectID, c.Body, c.EventAt
	}
	tag, err := s.db.Exec(ctx, `
		INSERT INTO callbacks (id, merchant_id, environment, type, subject_id, body, event_at, retry_until, request_id)
		SELECT n.id, n.merchant_id, n.environment, n.type, n.subject_id, n.body, n.event_at,
			now() + make_interval(secs => $8),
			coalesce(CASE WHEN n.type = $9 THEN (SELECT b.request_id FROM batches b WHERE b.id = n.subject_id)
				ELSE (SELECT d.request_id FROM disbursements d WHERE d.id = n.subject_id) END, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::timestamptz[])
			AS n (id, merchant_id, environment, type, subject_id, body, event_at)
		JOIN merchant_environments me ON me.merchant_id = n.merchant_id AND me.environment = n.environment
		WHERE me.callback_url <> ''
		ON CONFLICT (id) DO NOTHING`,
		ids, merchants, envs, types, subjects, bodies, ats, s.RetryFor.Seconds(), TypeBatchCompleted)
	if err != nil {
		return 0, fmt.Errorf("record callbacks: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Payouts loads payouts by id, for the fields status events do not carry.
func (s *Store) Payouts(ctx context.Context, ids []string) (map[string]*payout.Disbursement, error) {
	found, err := payout.NewStore(s.db).LoadMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*payout.Disbursement, len(found))
	for id, d := range found {
		out[id] = &d
	}
	return out, nil
}

// Claimed is a callback a worker holds a lease on.
type Claimed struct {
	ID, MerchantID, Environment, Type string
	Body                              []byte
	Attempts                          int // attempts made before this one
	EventAt                           time.Time
	URL                               string // the environment's callback_url now
	SubjectID                         string // the disbursement or batch announced
	RequestID                         string // X-Request-Id of the call that created it
	lease                             int64
}

// Claim leases up to limit due callbacks of endpoints that take one
// callback per POST (callback_batch_size 1) for leaseFor, taking at most
// the endpoint's callback_concurrency (capped by perEndpoint) callbacks of
// one merchant environment at a time, counting those other workers hold.
// Leases (not row locks held across the HTTP call) keep transactions short;
// an expired lease (a crashed worker) makes the callback due again.
//
// Each environment's due callbacks are read through callbacks_env_due
// (00023), oldest first, only as many as it has room for: the claim costs
// the same with 100,000 callbacks pending as with ten. (It used to rank
// every pending callback of every merchant on each claim.)
func (s *Store) Claim(ctx context.Context, limit, perEndpoint int, leaseFor time.Duration) ([]Claimed, error) {
	lease := randomLease()
	rows, err := s.db.Query(ctx, `
		WITH envs AS (
			SELECT me.merchant_id, me.environment,
				least(me.callback_concurrency, $1) - (SELECT count(*) FROM callbacks b
					WHERE b.merchant_id = me.merchant_id AND b.environment = me.environment
						AND b.status = 'pending' AND b.leased_until > now()) AS free
			FROM merchant_environments me WHERE me.callback_batch_size = 1
		), picked AS (
			SELECT c.id FROM envs e CROSS JOIN LATERAL (
				SELECT c.id, c.next_attempt_at FROM callbacks c
				WHERE c.merchant_id = e.merchant_id AND c.environment = e.environment
					AND c.status = 'pending' AND c.next_attempt_at <= now() AND c.leased_until <= now()
				ORDER BY c.next_attempt_at, c.id LIMIT greatest(e.free, 0)) c
			ORDER BY c.next_attempt_at, c.id LIMIT $2
		)
		UPDATE callbacks c SET lease = $3, leased_until = now() + make_interval(secs => $4)
		FROM picked, merchant_environments me
		WHERE c.id = picked.id AND c.status = 'pending' AND c.leased_until <= now()
			AND me.merchant_id = c.merchant_id AND me.environment = c.environment
		RETURNING c.id, c.merchant_id, c.environment, c.type, c.subject_id, c.body, c.attempts, c.event_at, me.callback_url, c.request_id, c.lease`,
		perEndpoint, limit, lease, leaseFor.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim callbacks: %w", err)
	}
	return scanClaimed(rows, lease)
}

func scanClaimed(rows pgx.Rows, lease int64) ([]Claimed, error) {
	defer rows.Close()
	var out []Claimed
	for rows.Next() {
		c := Claimed{lease: lease}
		if err := rows.Scan(&c.ID, &c.MerchantID, &c.Environment, &c.Type, &c.SubjectID, &c.Body, &c.Attempts, &c.EventAt, &c.URL, &c.RequestID, &c.lease); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ClaimBatches leases, for endpoints that take batched callbacks
// (callback_batch_size > 1), up to maxPosts groups of due callbacks, each
// group at most the endpoint's batch size and under a lease of its own
// (one lease is one POST). An endpoint gets at most its
// callback_concurrency (capped by perEndpoint) groups leased at a time,
// counting those other workers hold. Groups are handed out round-robin:
// every endpoint's first group before any endpoint's second. The callbacks
// of one group come back together, oldest first.
func (s *Store) ClaimBatches(ctx context.Context, maxPosts, perEndpoint int, leaseFor time.Duration) ([][]Claimed, error) {
	if maxPosts <= 0 {
		return nil, nil
	}
	// Each group's lease is base + its rank: base is random with room below
	// the bigint limit, so leases of different claims do not meet.
	base := randomLease() >> 8
	rows, err := s.db.Query(ctx, `
		WITH envs AS (
			SELECT me.merchant_id, me.environment, me.callback_batch_size AS size,
				least(me.callback_concurrency, $1) - (SELECT count(DISTINCT b.lease) FROM callbacks b
					WHERE b.merchant_id = me.merchant_id AND b.environment = me.environment
						AND b.status = 'pending' AND b.leased_until > now()) AS free
			FROM merchant_environments me WHERE me.callback_batch_size > 1
		), ranked AS (
			SELECT c.id, e.merchant_id, e.environment,
				(row_number() OVER (PARTITION BY e.merchant_id, e.environment ORDER BY c.next_attempt_at, c.id) - 1) / e.size AS g
			FROM envs e CROSS JOIN LATERAL (
				SELECT c.id, c.next_attempt_at FROM callbacks c
				WHERE c.merchant_id = e.merchant_id AND c.environment = e.environment
					AND c.status = 'pending' AND c.next_attempt_at <= now() AND c.leased_until <= now()
				ORDER BY c.next_attempt_at, c.id LIMIT greatest(e.free, 0) * e.size) c
		), grouped AS (
			SELECT id, dense_rank() OVER (ORDER BY g, merchant_id, environment) AS k FROM ranked
		)
		UPDATE callbacks c SET lease = $3 + grouped.k, leased_until = now() + make_interval(secs => $4)
		FROM grouped, merchant_environments me
		WHERE c.id = grouped.id AND grouped.k <= $2 AND c.status = 'pending' AND c.leased_until <= now()
			AND me.merchant_id = c.merchant_id AND me.environment = c.environment
		RETURNING c.id, c.merchant_id, c.environment, c.type, c.subject_id, c.body, c.attempts, c.event_at, me.callback_url, c.request_id, c.lease`,
		perEndpoint, maxPosts, base, leaseFor.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim callback batches: %w", err)
	}
	claimed, err := scanClaimed(rows, 0)
	if err != nil {
		return nil, fmt.Errorf("claim callback batches: %w", err)
	}
	byLease := map[int64]int{}
	var out [][]Claimed
	for _, c := range claimed {
		i, ok := byLease[c.lease]
		if !ok {
			i = len(out)
			byLease[c.lease] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], c)
	}
	for _, g := range out {
		slices.SortFunc(g, func(a, b Claimed) int {
			if c := a.EventAt.Compare(b.EventAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
	}
	return out, nil
}

func randomLease() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}

// Result is the outcome of one attempt.
type Result struct {
	URL          string
	StartedAt    time.Time
	Duration     time.Duration
	StatusCode   int // 0: no HTTP answer
	Err          string
	ResponseBody string
}

// OK reports whether the attempt delivered the callback (a 2xx).
func (r Result) OK() bool { return r.StatusCode >= 200 && r.StatusCode <= 299 }

// Finish logs an attempt and moves the callback on: delivered on a 2xx;
// otherwise due again after retryIn, or failed when its retry time is up.
// It returns the callback's new status ("" when the lease was lost to
// another worker; the attempt is logged all the same).
func (s *Store) Finish(ctx context.Context, c Claimed, r Result, retryIn time.Duration) (string, error) {
	var code *int
	if r.StatusCode != 0 {
		code = &r.StatusCode
	}
	var status string
	err := s.db.QueryRow(ctx, `
		WITH a AS (
			INSERT INTO callback_attempts (callback_id, url, started_at, duration_ms, status_code, error, response_body)
			VALUES ($1, $3, $4, $5, $6, $7, $8)
		)
		UPDATE callbacks SET
			attempts = attempts + 1,
			status = CASE WHEN $9 THEN 'delivered' WHEN now() >= retry_until THEN 'failed' ELSE 'pending' END,
			next_attempt_at = CASE WHEN $9 THEN next_attempt_at ELSE now() + make_interval(secs => $10) END,
			delivered_at = CASE WHEN $9 THEN now() ELSE delivered_at END,
			last_status_code = $6, last_error = $7, lease = NULL, leased_until = '-infinity'
		WHERE id = $1 AND lease = $2
		RETURNING status`,
		c.ID, c.lease, r.URL, r.StartedAt, r.Duration.Milliseconds(), code, r.Err, r.ResponseBody, r.OK(), retryIn.Seconds()).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("finish callback %s: %w", c.ID, err)
	}
	return status, nil
}

// FinishBatch logs one attempt that carried every callback of group (one
// lease, one POST) and moves each on as Finish does. Should r not be a 2xx,
// every callback waits the same retryIn, so the group stays due together
// and is retried in one POST again. It returns each callback's new status
// by id (absent when its lease was lost to another worker). One statement,
// so a group is recorded whole or not at all.
func (s *Store) FinishBatch(ctx context.Context, group []Claimed, r Result, retryIn time.Duration) (map[string]string, error) {
	if len(group) == 0 {
		return nil, nil
	}
	var code *int
	if r.StatusCode != 0 {
		code = &r.StatusCode
	}
	ids, leases := make([]string, len(group)), make([]int64, len(group))
	for i, c := range group {
		ids[i], leases[i] = c.ID, c.lease
	}
	rows, err := s.db.Query(ctx, `
		WITH g AS (
			SELECT * FROM unnest($1::text[], $2::bigint[]) AS g (id, lease)
		), a AS (
			INSERT INTO callback_attempts (callback_id, url, started_at, duration_ms, status_code, error, response_body)
			SELECT g.id, $4, $5, $6, $7, $8, $9 FROM g
		)
		UPDATE callbacks c SET
			attempts = attempts + 1,
			status = CASE WHEN $10 THEN 'delivered' WHEN now() >= retry_until THEN 'failed' ELSE 'pending' END,
			next_attempt_at = CASE WHEN $10 THEN next_attempt_at ELSE now() + make_interval(secs => $3) END,
			delivered_at = CASE WHEN $10 THEN now() ELSE delivered_at END,
			last_status_code = $7, last_error = $8, lease = NULL, leased_until = '-infinity'
		FROM g
		WHERE c.id = g.id AND c.lease = g.lease
		RETURNING c.id, c.status`,
		ids, leases, retryIn.Seconds(), r.URL, r.StartedAt, r.Duration.Milliseconds(), code, r.Err, r.ResponseBody, r.OK())
	if err != nil {
		return nil, fmt.Errorf("finish callback batch: %w", err)
	}
	defer rows.Close()
	out := make(map[string]string, len(group))
	for rows.Next() {
		var id, status string
		if err := rows.Scan(&id, &status); err != nil {
			return nil, fmt.Errorf("finish callback batch: %w", err)
		}
		out[id] = status
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finish callback batch: %w", err)
	}
	return out, nil
}

// PendingCount is the number of callbacks not yet delivered or failed.
func (s *Store) PendingCount(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM callbacks WHERE status = 'pending'`).Scan(&n)
	return n, err
}

// Attempt is one logged delivery attempt.
type Attempt struct {
	At           time.Time `json:"at"`
	URL          string    `json:"url"`
	DurationMS   int       `json:"duration_ms"`
	ResponseCode *int      `json:"response_code"`
	Error        string    `json:"error,omitempty"`
	ResponseBody string    `json:"response_body,omitempty"`
}

// Callback is a callback as the delivery log shows it.
type Callback struct {
	ID               string     `json:"id"`
	Type             string     `json:"type"`
	SubjectID        string     `json:"subject_id"`
	Status           string     `json:"status"`
	AttemptCount     int        `json:"attempt_count"`
	NextAttemptAt    *time.Time `json:"next_attempt_at"`
	RetryUntil       time.Time  `json:"retry_until"`
	CreatedAt        time.Time  `json:"created_at"`
	DeliveredAt      *time.Time `json:"delivered_at"`
	LastResponseCode *int       `json:"last_response_code"`
	LastError        string     `json:"last_error,omitempty"`
	Attempts         []Attempt  `json:"attempts"`
}

// MaxLoggedAttempts bounds the attempts List shows per callback (the newest).
const MaxLoggedAttempts = 20

const callbackColumns = `c.id, c.type, c.subject_id, c.status, c.attempts, c.next_attempt_at, c.retry_until,
	c.created_at, c.delivered_at, c.last_status_code, c.last_error`

func scanCallback(row pgx.Row) (Callback, error) {
	var c Callback
	var next time.Time
	err := row.Scan(&c.ID, &c.Type, &c.SubjectID, &c.Status, &c.AttemptCount, &next, &c.RetryUntil,
		&c.CreatedAt, &c.DeliveredAt, &c.LastResponseCode, &c.LastError)
	if c.Status == Pending {
		c.NextAttemptAt = &next
	}
	c.Attempts = []Attempt{}
	return c, err
}

// List returns an environment's callbacks, newest first, optionally of one
// status, after the callback id cursor ("": from the newest), each with its
// newest MaxLoggedAttempts attempts. AttemptCount counts the attempts since
// the callback was created or last redelivered.
func (s *Store) List(ctx context.Context, merchantID, environment, status, cursor string, limit int) ([]Callback, error) {
	rows, err := s.db.Query(ctx, `SELECT `+callbackColumns+` FROM callbacks c
		WHERE c.merchant_id = $1 AND c.environment = $2 AND ($3 = '' OR c.status = $3)
			AND ($4 = '' OR (c.created_at, c.id) < (SELECT created_at, id FROM callbacks
				WHERE id = $4 AND merchant_id = $1 AND environment = $2))
		ORDER BY c.created_at DESC, c.id DESC LIMIT $5`, merchantID, environment, status, cursor, limit)
	if err != nil {
		return nil, fmt.Errorf("list callbacks: %w", err)
	}
	var out []Callback
	for rows.Next() {
		c, err := scanCallback(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, s.attachAttempts(ctx, out, MaxLoggedAttempts)
}

// ValidCursor reports whether cursor names a callback of the environment.
func (s *Store) ValidCursor(ctx context.Context, merchantID, environment, cursor string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM callbacks WHERE id = $1 AND merchant_id = $2 AND environment = $3)`,
		cursor, merchantID, environment).Scan(&ok)
	return ok, err
}

// Get returns one callback with every attempt.
func (s *Store) Get(ctx context.Context, merchantID, environment, id string) (Callback, error) {
	c, err := scanCallback(s.db.QueryRow(ctx, `SELECT `+callbackColumns+` FROM callbacks c
		WHERE c.id = $1 AND c.merchant_id = $2 AND c.environment = $3`, id, merchantID, environment))
	if errors.Is(err, pgx.ErrNoRows) {
		return Callback{}, ErrNotFound
	}
	if err != nil {
		return Callback{}, err
	}
	list := []Callback{c}
	if err := s.attachAttempts(ctx, list, 0); err != nil {
		return Callback{}, err
	}
	return list[0], nil
}

// attachAttempts fills Attempts, newest first, at most max each (0: all).
func (s *Store) attachAttempts(ctx context.Context, cbs []Callback, max int) error {
	if len(cbs) == 0 {
		return nil
	}
	ids := make([]string, len(cbs))
	index := make(map[string]int, len(cbs))
	for i, c := range cbs {
		ids[i] = c.ID
		index[c.ID] = i
	}
	rows, err := s.db.Query(ctx, `SELECT callback_id, started_at, url, duration_ms, status_code, error, response_body FROM (
			SELECT *, row_number() OVER (PARTITION BY callback_id ORDER BY id DESC) AS rn
			FROM callback_attempts WHERE callback_id = ANY($1)) a
		WHERE $2 = 0 OR rn <= $2 ORDER BY callback_id, id DESC`, ids, max)
	if err != nil {
		return fmt.Errorf("load attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a Attempt
		if err := rows.Scan(&id, &a.At, &a.URL, &a.DurationMS, &a.ResponseCode, &a.Error, &a.ResponseBody); err != nil {
			return err
		}
		cbs[index[id]].Attempts = append(cbs[index[id]].Attempts, a)
	}
	return rows.Err()
}

// Redeliver makes a callback due now with a fresh retry period, whatever
// its status: a failed one is retried, a delivered one is sent again (the
// merchant dedups on its id).
func (s *Store) Redeliver(ctx context.Context, merchantID, environment, id string) (Callback, error) {
	tag, err := s.db.Exec(ctx, `UPDATE callbacks SET status = 'pending', attempts = 0, next_attempt_at = now(),
			retry_until = now() + make_interval(secs => $4)
		WHERE id = $1 AND merchant_id = $2 AND environment = $3`, id, merchantID, environment, s.RetryFor.Seconds())
	if err != nil {
		return Callback{}, fmt.Errorf("redeliver: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Callback{}, ErrNotFound
	}
	return s.Get(ctx, merchantID, environment, id)
}

// newSecret makes a callback signing secret.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "cbsec_" + hex.EncodeToString(b), nil
}

// Secret returns the environment's current callback secret, creating it on
// first use. The settings API shows it.
func (s *Store) Secret(ctx context.Context, merchantID, environment string) (string, error) {
	for range 2 {
		var secret string
		err := s.db.QueryRow(ctx, `SELECT secret FROM callback_secrets
			WHERE merchant_id = $1 AND environment = $2 AND expires_at IS NULL`, merchantID, environment).Scan(&secret)
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("callback secret: %w", err)
		}
		if secret, err = newSecret(); err != nil {
			return "", err
		}
		// Two first uses at once: the unique index keeps one; read it again.
		// The first secret is the one made when the environment was
		// activated (merchant_environments.callback_secret), when there is one.
		_, err = s.db.Exec(ctx, `INSERT INTO callback_secrets (merchant_id, environment, secret)
			SELECT $1, $2, coalesce(nullif(me.callback_secret, ''), $3) FROM merchant_environments me
			WHERE me.merchant_id = $1 AND me.environment = $2
			ON CONFLICT DO NOTHING`, merchantID, environment, secret)
		if err != nil {
			return "", fmt.Errorf("create callback secret: %w", err)
		}
	}
	return "", ErrNoEnvironment
}

// SigningSecrets returns the secrets to sign with now: the current one
// first, then a rotated-out one still in its grace period.
func (s *Store) SigningSecrets(ctx context.Context, merchantID, environment string) ([]string, error) {
	current, err := s.Secret(ctx, merchantID, environment)
	if err != nil {
		return nil, err
	}
	out := []string{current}
	rows, err := s.db.Query(ctx, `SELECT secret FROM callback_secrets
		WHERE merchant_id = $1 AND environment = $2 AND expires_at > now() ORDER BY id DESC`, merchantID, environment)
	if err != nil {
		return nil, fmt.Errorf("callback secrets: %w", err)
	}
	prev, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return append(out, prev...), err
}

// Rotation is the outcome of a secret rotation.
type Rotation struct {
	Secret                  string    `json:"callback_secret"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at"`
}

// RotateSecret makes a new current secret. The one it replaces keeps
// signing beside it for SecretGrace; a secret rotated out earlier stops at
// once, so at most two sign at a time.
func (s *Store) RotateSecret(ctx context.Context, merchantID, environment string) (Rotation, error) {
	if _, err := s.Secret(ctx, merchantID, environment); err != nil { // the one to rotate out
		return Rotation{}, err
	}
	secret, err := newSecret()
	if err != nil {
		return Rotation{}, err
	}
	var r Rotation
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM merchant_environments WHERE merchant_id = $1 AND environment = $2 FOR UPDATE`,
			merchantID, environment); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE callback_secrets SET expires_at = now()
			WHERE merchant_id = $1 AND environment = $2 AND expires_at > now()`, merchantID, environment); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `UPDATE callback_secrets SET expires_at = now() + make_interval(secs => $3)
			WHERE merchant_id = $1 AND environment = $2 AND expires_at IS NULL RETURNING expires_at`,
			merchantID, environment, s.SecretGrace.Seconds()).Scan(&r.PreviousSecretExpiresAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO callback_secrets (merchant_id, environment, secret) VALUES ($1, $2, $3)`,
			merchantID, environment, secret)
		return err
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate callback secret: %w", err)
	}
	r.Secret = secret
	return r, nil
}

// SetURL checks a callback URL with policy and stores it; a refused URL
// (a *URLError) stores nothing.
func (s *Store) SetURL(ctx context.Context, policy Policy, merchantID, environment, raw string) error {
	if err := policy.CheckURL(ctx, environment, raw); err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, `UPDATE merchant_environments SET callback_url = $3 WHERE merchant_id = $1 AND environment = $2`,
		merchantID, environment, raw)
	if err != nil {
		return fmt.Errorf("store callback_url: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoEnvironment
	}
	return nil
}
