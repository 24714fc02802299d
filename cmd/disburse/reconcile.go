package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor/statement"
)

// defaultReconcileGrace leaves out the last minute: what the statement
// follower and the dispatch workers are still applying.
const defaultReconcileGrace = time.Minute

// exitDifferences is the exit status of a reconciliation that found
// differences (1 is an error, 2 a usage error).
const exitDifferences = 3

func runReconcile(ctx context.Context, args []string) error {
	return reconcile(ctx, args, os.Stdout)
}

// reconcile runs the command, writing the report to out.
func reconcile(ctx context.Context, args []string, out io.Writer) error {
	var url, bankCode, date, env string
	var grace time.Duration
	var eb envBanks
	var asJSON bool
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.StringVar(&url, "postgres-url", "", "Postgres connection URL (required)")
	eb.register(fs, "http://127.0.0.1:8082", true)
	fs.StringVar(&env, "environment", payout.Sandbox, "whose statement to reconcile: sandbox (the sandbox banks) or production (the --production-bank-url gateway)")
	fs.StringVar(&bankCode, "bank", "", "bank code whose statement to reconcile, e.g. bca (required; e-wallets book at their host bank)")
	fs.StringVar(&date, "date", "", "day to reconcile, YYYY-MM-DD in Asia/Jakarta time (default today)")
	fs.DurationVar(&grace, "grace", defaultReconcileGrace, "leave out the last this long before now on both sides (what is still being applied)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if url == "" || bankCode == "" {
		return &exitError{code: 2, err: fmt.Errorf("missing settings: --postgres-url (DISBURSE_POSTGRES_URL) and --bank (DISBURSE_BANK) are required")}
	}
	if grace < 0 {
		return &exitError{code: 2, err: fmt.Errorf("--grace must not be negative, got %s", grace)}
	}
	if b, ok := connectors.Lookup(bankCode); !ok || b.Kind != connectors.KindBank {
		return &exitError{code: 2, err: fmt.Errorf("--bank %q is not a bank code (e-wallets book at their host bank)", bankCode)}
	}
	if env != payout.Sandbox && env != payout.Production {
		return &exitError{code: 2, err: fmt.Errorf("--environment must be sandbox or production, got %q", env)}
	}
	if date == "" {
		date = time.Now().In(connectors.Jakarta).Format(time.DateOnly)
	}
	day, err := statement.Day(date)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--date: %w", err)}
	}
	banks, err := eb.newBanks()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if !banks.Configured(env) {
		return &exitError{code: 2, err: fmt.Errorf("--environment %s: no bank gateway configured (set --production-bank-url)", env)}
	}
	pool, err := openPostgres(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	rc := &statement.Reconciler{Bank: banks.For(env), Environment: env, Payouts: payout.NewStore(pool), Ledger: ledger.NewStore(pool), Grace: grace}
	rep, err := rc.Reconcile(ctx, bankCode, day)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteTable(out); err != nil {
		return err
	}
	if !rep.OK() {
		return &exitError{code: exitDifferences, err: fmt.Errorf("%d difference(s) between %s's %s statement and the ledger on %s", len(rep.Differences), bankCode, env, rep.Date)}
	}
	return nil
}
