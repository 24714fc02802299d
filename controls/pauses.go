package controls

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultRefresh is how often Pauses reads the paused environments.
const DefaultRefresh = time.Second

// Pauses is an in-memory view of the paused environments for dispatch,
// refreshed every Refresh by one read: asking it costs no query per payout.
// A pause reaches dispatch within Refresh; a payout debited before the
// pause and sent within that time is the only one a pause does not park.
type Pauses struct {
	DB      *pgxpool.Pool
	Log     *slog.Logger
	Refresh time.Duration

	mu     sync.RWMutex
	paused map[[2]string]bool
}

// Paused reports whether the environment was paused at the last refresh.
func (p *Pauses) Paused(merchantID, environment string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.paused[[2]string{merchantID, environment}]
}

// Load reads the paused environments once.
func (p *Pauses) Load(ctx context.Context) error {
	rows, err := p.DB.Query(ctx, `SELECT merchant_id, environment FROM payout_controls WHERE merchant_paused OR operator_paused`)
	if err != nil {
		return err
	}
	defer rows.Close()
	next := map[[2]string]bool{}
	for rows.Next() {
		var m, e string
		if err := rows.Scan(&m, &e); err != nil {
			return err
		}
		next[[2]string{m, e}] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	p.paused = next
	p.mu.Unlock()
	return nil
}

// Run refreshes the view until ctx ends. A failed read keeps the last
// view (logged): a database outage stops sends anyway.
func (p *Pauses) Run(ctx context.Context) {
	every := p.Refresh
	if every <= 0 {
		every = DefaultRefresh
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := p.Load(ctx); err != nil && ctx.Err() == nil {
			p.Log.Warn("read paused environments", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
