package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/disburse/disburse/audit"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// TestAuditCatchesEachBreak breaks one invariant at a time behind the
// ledger's back and expects the audit to name it.
func TestAuditCatchesEachBreak(t *testing.T) {
	ctx := context.Background()
	breaks := []struct {
		name, sql, want string
	}{
		{"balance edited without postings", `UPDATE accounts SET balance = balance + 1 WHERE kind = 'available'`, "balance equals postings"},
		{"money created from nothing", `UPDATE accounts SET balance = balance + 7 WHERE kind = 'paid_out';
			INSERT INTO postings (entry_id, account_id, amount) SELECT (SELECT min(id) FROM journal_entries), id, 7 FROM accounts WHERE kind = 'paid_out'`, "money conserved per merchant"},
		{"second send to the bank", `INSERT INTO bank_calls (disbursement_id, kind, outcome) SELECT id, 'transfer', 'answered' FROM disbursements;
			INSERT INTO bank_calls (disbursement_id, kind, outcome) SELECT id, 'transfer', 'unknown' FROM disbursements`, "sent to the bank at most once"},
		{"status without its entry", `UPDATE disbursements SET status = 'COMPLETED'`, "entries match payout status"},
		{"status change missing from the feed", `DELETE FROM payout_events WHERE version = 2`, "every status change recorded once"},
		{"payout stuck", `UPDATE disbursements SET updated_at = now() - interval '2 hours'`, "nothing stuck"},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			pool, _ := fixture.Postgres(t)
			fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{FeeFlat: 100})
			req := payout.Request{ReferenceID: "r1", BankCode: "bca", AccountNumber: "1234567890", Amount: 10_000, Currency: "IDR"}
			d, _, err := payout.NewStore(pool).Create(ctx, "m1", payout.Sandbox, "k1", req)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := ledger.NewStore(pool).ApplyDebits(ctx, []string{d.ID}); err != nil {
				t.Fatal(err)
			}
			r, err := audit.Run(ctx, pool, audit.Options{})
			if err != nil || !r.OK() {
				t.Fatalf("clean ledger fails the audit: %v %s", err, r)
			}
			if _, err := pool.Exec(ctx, b.sql); err != nil {
				t.Fatal(err)
			}
			r, err = audit.Run(ctx, pool, audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() || !strings.Contains(r.String(), b.want) {
				t.Fatalf("audit did not report %q:\n%s", b.want, r)
			}
		})
	}
}
