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

// withStatements runs the dispatch stage's run together with the bank
// statement follower (returns, unknown outcomes settled from the bank's
// record) and the scheduled daily reconciliation; it returns when all
// three have. tune adjusts the follower and reconciler (tests).
func withStatements(run func(context.Context) error, pool *pgxpool.Pool, bank *connectors.Guard, log *slog.Logger,
	tune func(*statement.Follower, *statement.Reconciler)) func(context.Context) error {
	return func(ctx context.Context) error {
		f := &statement.Follower{Bank: bank, Cursors: statement.NewCursors(pool), Payouts: payout.NewStore(pool),
			Ledger: ledger.NewStore(pool), Log: log.With("part", "statement")}
		rc := &statement.Reconciler{Bank: bank, Payouts: payout.NewStore(pool), Ledger: ledger.NewStore(pool), Grace: defaultReconcileGrace}
		if tune != nil {
			tune(f, rc)
		}
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = f.Run(sctx) }()
		go func() { defer wg.Done(); rc.Schedule(sctx, nil, 0, log.With("part", "reconcile")) }()
		err := run(ctx)
		cancel()
		wg.Wait()
		return err
	}
}
