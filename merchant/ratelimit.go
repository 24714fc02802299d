package merchant

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Request budgets: creating money movement, and everything else.
const (
	BudgetCreate = "create"
	BudgetRead   = "read"
)

// takeSQL refills the bucket for the time since its last use (at most to
// the burst), then takes one token if there is one, in one statement. The
// row lock serializes concurrent takers across every API instance, and the
// database's clock is the only clock, so instances with skewed clocks
// cannot mint tokens. A taker that waited for the lock refills nothing for
// the wait (its now() is older than the row's), which errs on the strict side.
const takeSQL = `
INSERT INTO rate_buckets AS b (merchant_id, environment, budget, tokens, allowed, updated_at)
VALUES ($1, $2, $3, $4::float8 - 1, true, now())
ON CONFLICT (merchant_id, environment, budget) DO UPDATE SET
    tokens = CASE WHEN ` + refilled + ` >= 1 THEN ` + refilled + ` - 1 ELSE ` + refilled + ` END,
    allowed = ` + refilled + ` >= 1,
    updated_at = greatest(b.updated_at, now())
RETURNING tokens, allowed`

const refilled = `least($4::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * $5::float8)`

// Take takes one request from the environment's bucket of budget, which
// refills at perSecond and holds at most burst. When the bucket is empty it
// reports false and how long until the next token.
func (s *Store) Take(ctx context.Context, merchantID, environment, budget string, perSecond, burst int) (bool, time.Duration, error) {
	if perSecond <= 0 || burst < 1 {
		return false, 0, fmt.Errorf("rate limit %s: rate %d/s with burst %d", budget, perSecond, burst)
	}
	var tokens float64
	var allowed bool
	if err := s.db.QueryRow(ctx, takeSQL, merchantID, environment, budget, burst, perSecond).Scan(&tokens, &allowed); err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", budget, err)
	}
	if allowed {
		return true, 0, nil
	}
	wait := time.Duration(math.Ceil((1 - tokens) / float64(perSecond) * float64(time.Second)))
	return false, wait, nil
}
