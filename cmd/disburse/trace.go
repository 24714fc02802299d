package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/disburse/disburse/internal/trace"
)

// runTrace prints one payout's story from Postgres (internal/trace).
func runTrace(ctx context.Context, args []string) error {
	var url string
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.StringVar(&url, "postgres-url", "", "Postgres connection URL (required)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: disburse trace [--postgres-url URL] <disbursement id>")
		fs.PrintDefaults()
	}
	// The id may come before or after the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fillFromEnv(fs); err != nil {
		return err
	}
	rest := fs.Args()
	if id == "" && len(rest) > 0 {
		id, rest = rest[0], rest[1:]
	}
	if id == "" || len(rest) > 0 {
		fs.Usage()
		return fmt.Errorf("trace takes exactly one disbursement id")
	}
	if url == "" {
		return fmt.Errorf("missing --postgres-url (DISBURSE_POSTGRES_URL)")
	}
	pool, err := openPostgres(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	t, err := trace.Build(ctx, pool, id)
	if errors.Is(err, trace.ErrNotFound) {
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return err
	}
	return t.Write(os.Stdout)
}
