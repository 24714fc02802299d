package ledger_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

func TestInvoiceBilling(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 5_000_000, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	if err := l.SetBilling(ctx, "m1", payout.Sandbox, "invoice", 1_000_000); err != nil {
		t.Fatal(err)
	}

	// Three payouts of 300,000 + 2,500 fit a 1,000,000 credit limit; the fourth does not.
	out, _, err := l.ApplyDebits(ctx, pending(t, pool, "m1", 4, 300_000))
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range out[:3] {
		if d.Status != payout.Processing {
			t.Fatalf("payout %d: %s", i, d.Status)
		}
	}
	if out[3].Status != payout.Failed || *out[3].FailureCode != payout.CreditLimitExceeded {
		t.Fatalf("fourth payout: %s %v", out[3].Status, out[3].FailureCode)
	}
	b := balance(t, l, "m1")
	if b.Billing != "invoice" || b.Invoice == nil || b.Invoice.Used != 907_500 || b.Available != 92_500 || b.Pending != 907_500 {
		t.Fatalf("balance %+v invoice %+v", b, b.Invoice)
	}

	// A failed payout goes back to the invoice that paid for it; a returned
	// one gives back its amount.
	mustSettle(t, l, out[0].ID, ledger.Outcome{FailureCode: payout.BankRejected})
	mustSettle(t, l, out[1].ID, ledger.Outcome{Completed: true})
	mustSettle(t, l, out[2].ID, ledger.Outcome{Completed: true})
	if _, _, err := l.Return(ctx, out[2].ID); err != nil {
		t.Fatal(err)
	}
	if b := balance(t, l, "m1"); b.Invoice.Used != 302_500+2_500 {
		t.Fatalf("used %d, want %d", b.Invoice.Used, 305_000)
	}

	inv, err := l.CloseInvoice(ctx, "m1", payout.Sandbox, "IDR")
	if err != nil || inv.Status != "ISSUED" || *inv.AmountDue != 305_000 {
		t.Fatalf("close: %+v %v", inv, err)
	}
	b = balance(t, l, "m1")
	if b.Invoice.Used != 0 || b.Invoice.Unpaid != 305_000 || b.Available != 695_000 {
		t.Fatalf("after close: %+v %+v", b, b.Invoice)
	}
	if _, err := l.PayInvoice(ctx, "m1", payout.Sandbox, inv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PayInvoice(ctx, "m1", payout.Sandbox, inv.ID); !errors.Is(err, ledger.ErrInvoiceState) {
		t.Fatalf("second payment: %v", err)
	}
	if b := balance(t, l, "m1"); b.Available != 1_000_000 || b.Invoice.Unpaid != 0 {
		t.Fatalf("after payment: %+v %+v", b, b.Invoice)
	}
	// The deposit was never touched.
	var deposit int64
	_ = pool.QueryRow(ctx, `SELECT balance FROM accounts WHERE merchant_id = 'm1' AND kind = 'available'`).Scan(&deposit)
	if deposit != 5_000_000 {
		t.Fatalf("deposit %d changed under invoice billing", deposit)
	}
	fixture.Audit(t, pool)
}

// TestInvoiceCloseRacesDebits closes periods while debits flow: every
// debited amount lands in exactly one invoice or the open period.
func TestInvoiceCloseRacesDebits(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 0, merchant.Settings{FeeFlat: fee})
	l := ledger.NewStore(pool)
	if err := l.SetBilling(ctx, "m1", payout.Sandbox, "invoice", 1<<50); err != nil {
		t.Fatal(err)
	}
	ids := pending(t, pool, "m1", 400, 10_000)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < len(ids); i += 20 {
			if _, _, err := l.ApplyDebits(ctx, ids[i:i+20]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if _, err := l.CloseInvoice(ctx, "m1", payout.Sandbox, "IDR"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	invoices, err := l.Invoices(ctx, "m1", payout.Sandbox)
	if err != nil {
		t.Fatal(err)
	}
	var invoiced int64
	for _, inv := range invoices {
		if inv.AmountDue != nil {
			invoiced += *inv.AmountDue
		}
	}
	total := invoiced + balance(t, l, "m1").Invoice.Used
	if want := int64(400 * (10_000 + fee)); total != want {
		t.Fatalf("invoices %d + open period = %d, want %d", invoiced, total, want)
	}
	fixture.Audit(t, pool)
}

func mustSettle(t *testing.T, l *ledger.Store, id string, o ledger.Outcome) {
	t.Helper()
	if _, changed, err := l.Settle(ctx, id, o); err != nil || !changed {
		t.Fatalf("settle %s: changed=%v err=%v", id, changed, err)
	}
}
