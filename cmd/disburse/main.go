// Command disburse is the one binary of the disbursement service. Each role
// is a subcommand; `disburse dev` runs every role in one process on embedded
// defaults. The roles only wire packages together: the business logic lives
// in api, ledger, payout, merchant, processor and connectors.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"dev":       {"run every role in one process on embedded defaults (the demo)", runDev},
	"api":       {"serve the merchant API and the operator API", runAPI},
	"worker":    {"run consumer stages (--stages ledger,dispatch)", runWorker},
	"banksim":   {"serve the sandbox banks over HTTP", runBanksim},
	"migrate":   {"apply the Postgres migrations", runMigrate},
	"audit":     {"check the money invariants on a database; exit 1 on a violation", runAudit},
	"submit":    {"upload a batch file (CSV or JSON) and follow it with a progress bar", runSubmit},
	"reconcile": {"compare a bank's statement for a day with the ledger; exit 3 on a difference", runReconcile},
	"version":   {"print the version and commit stamped at build time", runVersion},
	"probe":     {"GET a health URL; exit 0 on 2xx (the container health check)", runProbe},
	"trace":     {"print one payout's story from Postgres: events, ledger entries, bank calls, lease, callbacks and attempts", runTrace},
	"bench":     {"run the whole pipeline end to end on real services and measure it (docs/benchmarks.md)", runBench},
}

// exitError carries a process exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	// DISBURSE_LOG_LEVEL (debug, info, warn, error) sets the log level;
	// `disburse bench` quiets its worker processes with it.
	level := slog.LevelInfo
	if v := os.Getenv("DISBURSE_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			fmt.Fprintf(os.Stderr, "disburse: DISBURSE_LOG_LEVEL=%q: %v\n", v, err)
			os.Exit(2)
		}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "disburse: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) { // -h: the flag package printed the usage
			fmt.Fprintf(os.Stderr, "disburse %s: %v\n", os.Args[1], err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is the process status for a command's error: 0 for -h, an
// exitError's own code, else 1.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: disburse <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nEvery flag can also be set as DISBURSE_<FLAG> (e.g. --api-addr as DISBURSE_API_ADDR).\nRun `disburse <command> -h` for its flags.")
}
