package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disburse/disburse/internal/fixture"
)

// TestSubmitCLI runs `disburse submit` against the pipeline: a dry run, an
// upload followed to completion, and a second run that pays nothing again.
func TestSubmitCLI(t *testing.T) {
	p := startPipeline(t, kfakeBrokers(t), "cli.")
	bin := buildBinary(t)
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("reference_id,bank_code,account_number,amount\n")
	for i := 0; i < 60; i++ {
		acct := fmt.Sprintf("55%07d5", i)
		if i%20 == 0 {
			acct = "5500000000" // INVALID_ACCOUNT at the bank
		}
		fmt.Fprintf(&csv, "cli-%d,bca,%s,%d\n", i, acct, 20_000+i)
	}
	good := filepath.Join(dir, "payouts.csv")
	if err := os.WriteFile(good, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.csv")
	_ = os.WriteFile(bad, []byte("reference_id,bank_code,account_number,amount\nx,bca,1234567890,-1\n"), 0o600)

	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"submit", "--api-url", p.api.URL, "--key", p.key, "--poll", "100ms"}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}

	if out, code := run("--dry-run", bad); code != 1 || !strings.Contains(out, "row 1: amount TOO_SMALL") {
		t.Fatalf("dry run of a bad file: exit %d\n%s", code, out)
	}
	if out, code := run("--dry-run", good); code != 0 || !strings.Contains(out, "60 valid") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements`); n != 0 {
		t.Fatalf("a dry run wrote %d payouts", n)
	}
	out, code := run(good)
	if code != 3 || !strings.Contains(out, "INVALID_ACCOUNT") || !strings.Contains(out, "57/60") && !strings.Contains(out, "60/60") {
		t.Fatalf("submit with failures: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "COMPLETED") || !strings.Contains(out, "items/s") || strings.Contains(out, "PENDING") {
		t.Fatalf("no progress or summary:\n%s", out)
	}
	t.Logf("submit output:\n%s", out)
	// Run again: the same file maps to the same batch; nothing is paid twice.
	out, code = run("--allow-failures", good)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM journal_entries WHERE kind = 'debit'`); n != 60 {
		t.Fatalf("%d debits for 60 items", n)
	}
	fixture.Audit(t, p.pool)
}
