package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/obs"
)

// consumerStages are the stages that consume as a Kafka group named
// <prefix><stage>; the relay only produces.
var consumerStages = map[string]bool{"ledger": true, "dispatch": true, "callbacks": true, "sink": true}

// observers runs a worker's background measurements: consumer lag of the
// groups of its stages (kadm), the money in flight (with the dispatch
// stage) and the periodic books check.
type observers struct{ wg sync.WaitGroup }

// start launches them until ctx ends; booksEvery 0 disables the books check.
func (o *observers) start(ctx context.Context, admin *kgo.Client, pool *pgxpool.Pool, groupPrefix string, stageNames []string, booksEvery time.Duration) {
	var groups []string
	for _, n := range stageNames {
		if consumerStages[n] {
			groups = append(groups, groupPrefix+n)
		}
	}
	if len(groups) > 0 {
		lm := obs.NewLagMonitor(admin, slog.Default().With("component", "lag"), groups...)
		o.wg.Go(func() { lm.Run(ctx) })
	}
	// The money in flight is a figure of the whole database; the workers
	// that send payouts (dispatch) sample it, so it is there wherever
	// payouts move and not queried by every other worker.
	if slices.Contains(stageNames, "dispatch") {
		mf := &obs.InFlight{DB: pool, Log: slog.Default().With("component", "in_flight")}
		o.wg.Go(func() { mf.Run(ctx) })
	}
	if booksEvery > 0 {
		bc := &obs.BooksCheck{DB: pool, Every: booksEvery, Log: slog.Default().With("component", "books")}
		o.wg.Go(func() { bc.Run(ctx) })
	}
}

// wait returns when every observer has stopped.
func (o *observers) wait() { o.wg.Wait() }
