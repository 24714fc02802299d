package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/disburse/disburse/audit"
)

func runAudit(ctx context.Context, args []string) error {
	var url string
	var stuck time.Duration
	var withReports bool
	var rc reportsConfig
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.BoolVar(&withReports, "reports", false, "also reconcile the ClickHouse reports with Postgres (needs --clickhouse-addr or --chdb-path)")
	rc.register(fs)
	fs.StringVar(&url, "postgres-url", "", "Postgres connection URL (required)")
	fs.DurationVar(&stuck, "stuck-after", time.Hour, "flag payouts still PENDING or PROCESSING after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("missing --postgres-url (DISBURSE_POSTGRES_URL)")
	}
	pool, err := openPostgres(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := audit.Run(ctx, pool, audit.Options{StuckAfter: stuck})
	if err != nil {
		return err
	}
	if withReports {
		if !rc.configured() {
			return fmt.Errorf("--reports needs --clickhouse-addr or --chdb-path")
		}
		st, err := rc.open(ctx)
		if err != nil {
			return err
		}
		defer st.Engine().Close()
		rr, err := audit.Reports(ctx, pool, st)
		if err != nil {
			return err
		}
		r.Checks += rr.Checks
		r.Violations = append(r.Violations, rr.Violations...)
	}
	fmt.Println(r)
	if !r.OK() {
		return &exitError{code: 1, err: fmt.Errorf("%d invariant violation(s)", len(r.Violations))}
	}
	return nil
}
