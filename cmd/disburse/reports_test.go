package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
)

// `disburse migrate --chdb-path` creates the reports schema, and `disburse
// audit --reports` passes on matching stores and exits 1, naming the
// difference, when ClickHouse lacks payouts the ledger has. Run as
// separate processes: the embedded engine allows one data directory per
// process, and the tests of this package hold one already.
func TestMigrateAndAuditReports(t *testing.T) {
	fixture.Reports(t) // skips or fails, like the other reports tests, without the engine
	pool, pgURL := fixture.Postgres(t)
	bin := buildBinary(t)
	chdbPath := filepath.Join(t.TempDir(), "chdb")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("migrate", "--chdb-path", chdbPath); err != nil || !strings.Contains(out, "0003_daily_status.sql") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := run("migrate", "--chdb-path", chdbPath); err != nil || strings.Contains(out, "applied clickhouse migration") {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
	audit := []string{"audit", "--reports", "--postgres-url", pgURL, "--chdb-path", chdbPath}
	if out, err := run(audit...); err != nil || !strings.Contains(out, "checks passed") {
		t.Fatalf("audit on empty stores: %v\n%s", err, out)
	}

	fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{FeeFlat: 2500})
	ids := fixture.Pending(t, pool, "m1", "a", 2, 10_000)
	if _, _, err := ledger.NewStore(pool).ApplyDebits(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	out, err := run(audit...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "m1/sandbox PROCESSING IDR: clickhouse has 0 payouts") {
		t.Fatalf("audit with payouts missing from ClickHouse: %v\n%s", err, out)
	}
}
