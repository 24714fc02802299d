package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// TestDroppedLeasesReleased is the state a Postgres restart can leave: a
// claim that committed while its caller saw an error. Its leases belong to
// no job, yet the heartbeat renews them with the instance's others, so
// without releaseDropped every later claim of those payouts finds them
// leased for as long as the process lives (TestPostgresRestartMidSettleGroup
// in cmd/disburse found payouts parked "leased" forever that way).
func TestDroppedLeasesReleased(t *testing.T) {
	ctx := context.Background()
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000_000, merchant.Settings{})
	ids := fixture.Pending(t, pool, "m1", "k", 3, 10_000)
	fixture.Move(t, pool, ids, payout.Processing)
	s := &Stage{Payouts: payout.NewStore(pool), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), instance: "dispatch-test"}
	const ttl, checkAfter = 10 * time.Second, 30 * time.Second

	// The lost claim: committed, but the worker parked its jobs.
	lost := s.instance + "/lost"
	if got, err := s.Payouts.ClaimSet(ctx, ids[:2], lost, s.instance, ttl, checkAfter); err != nil || len(got.Claimed) != 2 {
		t.Fatalf("claim: %v %+v", err, got)
	}
	s.dropped.add(lost, ids[:2]...)
	// A lease of the same instance that a live job holds: it must stay.
	held := s.instance + "/held"
	if got, err := s.Payouts.ClaimSet(ctx, ids[2:], held, s.instance, ttl, checkAfter); err != nil || len(got.Claimed) != 1 {
		t.Fatalf("claim: %v %+v", err, got)
	}
	// A dropped owner whose lease is not there (the claim did not commit).
	s.dropped.add(s.instance+"/never", ids[2])

	if _, err := s.Payouts.RenewLeases(ctx, s.instance, ttl); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Payouts.ClaimSet(ctx, ids, s.instance+"/again", s.instance, ttl, checkAfter); err != nil || len(got.Leased) != 3 {
		t.Fatalf("before the release every payout should be leased: %v %+v", err, got)
	}

	s.releaseDropped(ctx)
	got, err := s.Payouts.ClaimSet(ctx, ids, s.instance+"/again", s.instance, ttl, checkAfter)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Claimed) != 2 || len(got.Leased) != 1 || got.Leased[ids[2]].IsZero() {
		t.Fatalf("after the release the lost claim's payouts should be free and the held one leased: %+v", got)
	}
	s.dropped.mu.Lock()
	left := len(s.dropped.ids)
	s.dropped.mu.Unlock()
	if left != 0 {
		t.Errorf("%d dropped leases still listed after a successful release", left)
	}

	// A failed release keeps the list for the next heartbeat.
	s.dropped.add(lost, ids[0])
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	s.releaseDropped(cancelled)
	s.dropped.mu.Lock()
	left = len(s.dropped.ids)
	s.dropped.mu.Unlock()
	if left != 1 {
		t.Errorf("a failed release left %d dropped leases listed, want 1", left)
	}
}

func TestMayHaveCommitted(t *testing.T) {
	// A real failure to connect: nothing reached a server.
	_, connectErr := pgconn.Connect(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5")
	var ce *pgconn.ConnectError
	if !errors.As(connectErr, &ce) {
		t.Fatalf("connecting to a closed port: %v (%T), want a *pgconn.ConnectError", connectErr, connectErr)
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("commit: %w", pgconn.ErrConnClosed), true},
		{fmt.Errorf("claim leases: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("begin: %w", connectErr), false},
	} {
		if got := mayHaveCommitted(c.err); got != c.want {
			t.Errorf("mayHaveCommitted(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
