package dispatch

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// droppedLeases are leases this process gave up on without knowing that
// they are gone from Postgres: a claim whose transaction failed at its
// commit (Postgres restarted mid-commit: the claim may have committed), or
// a release that failed. Nothing works under them any more, but the
// heartbeat renews every lease of the instance (payout.Store.RenewLeases),
// so left alone they would fence their payouts off from every later claim,
// this process's included, for as long as the process lives. The
// heartbeat deletes them (owner by owner, so a lease taken since by a new
// claim stays) before it renews, until the delete succeeds.
type droppedLeases struct {
	mu          sync.Mutex
	ids, owners []string
}

// add records owner's leases on ids as dropped.
func (d *droppedLeases) add(owner string, ids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		d.ids = append(d.ids, id)
		d.owners = append(d.owners, owner)
	}
}

// releaseDropped deletes the dropped leases; what it could not delete is kept for
// the next call.
func (s *Stage) releaseDropped(ctx context.Context) {
	d := &s.dropped
	d.mu.Lock()
	ids, owners := d.ids, d.owners
	d.ids, d.owners = nil, nil
	d.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	n, err := s.Payouts.ReleaseLeases(ctx, ids, owners)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("releasing dropped leases failed; retrying at the next heartbeat", "leases", len(ids), "err", err)
		}
		d.mu.Lock()
		d.ids, d.owners = append(d.ids, ids...), append(d.owners, owners...)
		d.mu.Unlock()
		return
	}
	// found: how many of the dropped leases did exist (claims that
	// committed unanswered, releases that failed).
	s.Log.Info("released dropped leases", "dropped", len(ids), "found", n)
}

// mayHaveCommitted reports whether a write that failed with err may have
// committed all the same: anything but a failure to connect, or another
// failure pgconn knows came before anything was sent.
func mayHaveCommitted(err error) bool {
	var ce *pgconn.ConnectError
	return !errors.As(err, &ce) && !pgconn.SafeToRetry(err)
}
