package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/merchant"
)

// shareRateLimits registers this API instance in Postgres (heartbeat until
// ctx ends) and gives s rate limits held in memory as this instance's share
// of each merchant's rate, so that a request writes no shared bucket row.
func shareRateLimits(ctx context.Context, s *api.Server, pool *pgxpool.Pool) error {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	id := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	in := merchant.NewStore(pool).Instances(id, 0, 0, slog.Default())
	if err := in.Beat(ctx); err != nil {
		return err
	}
	go in.Run(ctx)
	s.RateLimiter = merchant.NewShareLimiter(in.Live)
	slog.Info("api instance registered", "instance", id, "live", in.Live())
	return nil
}
