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
	var url, bankURL, bankCode, date string
	var grace, bankTimeout time.Duration
	var profilesPath string
	var asJSON bool
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.StringVar(&url, "postgres-url", "", "Postgres connection URL (required)")
	fs.StringVar(&bankURL, "bank-url", "http://127.0.0.1:8082", "base URL of the bank gateway (the sandbox banks in development)")
	fs.StringVar(&profilesPath, "bank-profiles", "", "YAML file of the banks' profiles and base URLs (docs/banks.md); default: the built-in profiles")
	fs.DurationVar(&bankTimeout, "bank-timeout", 0, "timeout of one statement read, replacing the bank profile's (0: the profile's)")
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
	if date == "" {
		date = time.Now().In(connectors.Jakarta).Format(time.DateOnly)
	}
	day, err := statement.Day(date)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--date: %w", err)}
	}
	pool, err := openPostgres(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	bank, _, err := bankConfig{url: bankURL, timeout: bankTimeout, profilesPath: profilesPath}.newBank()
	if err != nil {
		return err
	}
	rc := &statement.Reconciler{Bank: bank, Payouts: payout.NewStore(pool), Ledger: ledger.NewStore(pool), Grace: grace}
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
		return &exitError{code: exitDifferences, err: fmt.Errorf("%d difference(s) between %s's statement and the ledger on %s", len(rep.Differences), bankCode, rep.Date)}
	}
	return nil
}
