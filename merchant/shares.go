package merchant

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Heartbeat defaults of the API instance registry: each instance beats
// every DefaultHeartbeat and counts the instances that beat within
// DefaultLiveness, so one that stops drops out of the others' counts
// within about DefaultLiveness + DefaultHeartbeat.
const (
	DefaultHeartbeat = 500 * time.Millisecond
	DefaultLiveness  = 2 * time.Second
)

// Instances registers one API instance in Postgres (table api_instances)
// and keeps the count of live instances, for ShareLimiter.
type Instances struct {
	store    *Store
	id       string
	every    time.Duration
	liveness time.Duration
	log      *slog.Logger
	live     atomic.Int64
}

// Instances returns the registry entry of the instance named id (unique
// per process, e.g. host and a random suffix). every and liveness of zero
// take the defaults.
func (s *Store) Instances(id string, every, liveness time.Duration, log *slog.Logger) *Instances {
	if every <= 0 {
		every = DefaultHeartbeat
	}
	if liveness <= 0 {
		liveness = DefaultLiveness
	}
	if log == nil {
		log = slog.Default()
	}
	i := &Instances{store: s, id: id, every: every, liveness: liveness, log: log}
	i.live.Store(1)
	return i
}

// Beat records this instance as alive and recounts the live instances (by
// the database's clock, so skewed instance clocks agree). Rows dead for ten
// liveness windows are deleted.
func (i *Instances) Beat(ctx context.Context) error {
	var n int64
	err := i.store.db.QueryRow(ctx, `
		WITH beat AS (
			INSERT INTO api_instances (id, heartbeat_at) VALUES ($1, now())
			ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()),
		gone AS (
			DELETE FROM api_instances WHERE heartbeat_at < now() - 10 * $2::float8 * interval '1 second' AND id <> $1)
		SELECT count(*) + 1 FROM api_instances WHERE heartbeat_at >= now() - $2::float8 * interval '1 second' AND id <> $1`,
		i.id, i.liveness.Seconds()).Scan(&n)
	if err != nil {
		return fmt.Errorf("api instance heartbeat: %w", err)
	}
	if old := i.live.Swap(n); old != n {
		i.log.Info("live API instances changed", "instance", i.id, "live", n, "was", old)
	}
	return nil
}

// Run beats every heartbeat interval until ctx ends, then removes this
// instance's row so that the others take its share at once. A failed beat
// keeps the last count and is retried at the next tick.
func (i *Instances) Run(ctx context.Context) {
	t := time.NewTicker(i.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			leave, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if _, err := i.store.db.Exec(leave, `DELETE FROM api_instances WHERE id = $1`, i.id); err != nil {
				i.log.Warn("api instance leave", "instance", i.id, "err", err)
			}
			return
		case <-t.C:
			if err := i.Beat(ctx); err != nil && ctx.Err() == nil {
				i.log.Warn("api instance heartbeat failed", "instance", i.id, "err", err)
			}
		}
	}
}

// Live is the number of live instances at the last beat, this one
// included (1 before the first).
func (i *Instances) Live() int { return int(i.live.Load()) }

// ShareLimiter is a rate limiter that writes nothing shared per request:
// each instance keeps token buckets in memory holding its share of every
// merchant's rate and burst, the share being 1/Live() of the live API
// instances. Together the instances admit about the merchant's rate; when
// one dies the others' shares grow within the liveness window. The price:
// a merchant whose calls all reach one instance gets only that instance's
// share, so a load balancer should spread calls evenly.
type ShareLimiter struct {
	live func() int
	now  func() time.Time

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

type bucketKey struct{ merchantID, environment, budget string }

type bucket struct {
	tokens float64
	at     time.Time
}

// NewShareLimiter returns a limiter whose share is 1/live() (live below 1
// counts as 1).
func NewShareLimiter(live func() int) *ShareLimiter {
	return &ShareLimiter{live: live, now: time.Now, buckets: map[bucketKey]*bucket{}}
}

// Take takes one call from this instance's share of the environment's
// budget (rate per second, burst at most), or says how long until the
// share has one. It has Store.Take's signature.
func (l *ShareLimiter) Take(_ context.Context, merchantID, environment, budget string, perSecond, burst int) (bool, time.Duration, error) {
	if perSecond <= 0 || burst < 1 {
		return false, 0, fmt.Errorf("rate limit %s: rate %d/s with burst %d", budget, perSecond, burst)
	}
	n := float64(max(l.live(), 1))
	rate := float64(perSecond) / n
	// A share of the burst below one call would never admit anything.
	capacity := max(float64(burst)/n, 1)
	now := l.now()
	k := bucketKey{merchantID, environment, budget}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		b = &bucket{tokens: capacity, at: now}
		l.buckets[k] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens += el * rate
		b.at = now
	}
	// A smaller share (an instance joined) caps what this one holds now.
	b.tokens = min(b.tokens, capacity)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0, nil
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / rate * float64(time.Second))), nil
}
