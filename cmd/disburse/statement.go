package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor/statement"
)

// withStatements runs the dispatch stage's run together with, for each
// environment that has a bank gateway, that gateway's statement follower
// (returns, unknown outcomes settled from the bank's record) and scheduled
// daily reconciliation; it returns when all have. tune adjusts each
// follower and reconciler (tests).
func withStatements(run func(context.Context) error, pool *pgxpool.Pool, banks *connectors.Banks, log *slog.Logger,
	tune func(*statement.Follower, *statement.Reconciler)) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, env := range banks.Unconfigured() {
			log.Warn("no bank gateway for this environment: its payouts are not sent; they wait parked (reason no_gateway) and fail BANK_UNAVAILABLE after their bank profile's unavailable limit",
				"environment", env)
		}
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, env := range banks.Environments() {
			bank := banks.For(env)
			f := &statement.Follower{Bank: bank, Environment: env, Cursors: statement.NewCursors(pool), Payouts: payout.NewStore(pool),
				Ledger: ledger.NewStore(pool), Log: log.With("part", "statement")}
			rc := &statement.Reconciler{Bank: bank, Environment: env, Payouts: payout.NewStore(pool), Ledger: ledger.NewStore(pool), Grace: defaultReconcileGrace}
			if tune != nil {
				tune(f, rc)
			}
			wg.Add(2)
			go func() { defer wg.Done(); _ = f.Run(sctx) }()
			go func() { defer wg.Done(); rc.Schedule(sctx, nil, 0, log.With("part", "reconcile")) }()
		}
		err := run(ctx)
		cancel()
		wg.Wait()
		return err
	}
}
