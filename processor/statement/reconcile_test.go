package statement

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
)

// TestReconcileDifferences: each kind of difference between the bank's
// statement and the ledger is found, once, and nothing else is listed.
func TestReconcileDifferences(t *testing.T) {
	e := newEnv(t)
	ids := e.debited(t, "rec", 6, 100_000)
	// 0 matches; 1 was never sent but is COMPLETED here; 2 was returned,
	// the return not applied; 3 paid, still PROCESSING here; 4 REVERSED
	// here without a return at the bank; 5 matches and is paid twice below.
	sent := map[int]string{0: "1234567890", 2: "1234563333", 3: "1234567890", 4: "1234567890", 5: "1234567890"}
	for i, acct := range sent {
		e.send(t, ids[i:i+1], func(int) string { return acct }, 100_000)
	}
	e.settleAll(t, []string{ids[0], ids[1], ids[2], ids[4], ids[5]})
	if _, _, err := e.ledger.Return(ctx, ids[4]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bank.Inject("bca", connectors.StatementEntry{Reference: "ghost-1", Kind: connectors.EntryPaid, Amount: 55_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bank.Inject("bca", connectors.StatementEntry{Reference: ids[5], Kind: connectors.EntryPaid, Amount: 100_000}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the return", func() bool { return e.bank.Record(ids[2]).Status == connectors.StatusReturned })
	statementLen(t, e) // books the due return

	rc := &Reconciler{Bank: e.client, Payouts: e.payouts, Ledger: e.ledger}
	y, m, d := time.Now().In(connectors.Jakarta).Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, connectors.Jakarta)
	rep, err := rc.Reconcile(ctx, "bca", day)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, diff := range rep.Differences {
		got = append(got, diff.Kind+" "+diff.Reference)
	}
	slices.Sort(got)
	want := []string{
		AmountDiffers + " " + ids[5],
		CompletedUnknownToBank + " " + ids[1],
		PaidNotCompleted + " " + ids[3],
		PaidNotCompleted + " ghost-1",
		ReturnNotApplied + " " + ids[2],
		ReversedUnknownToBank + " " + ids[4],
	}
	slices.Sort(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("differences:\n got %v\nwant %v", got, want)
	}
	if rep.BankEntries != 8 || rep.Movements != 6 {
		t.Errorf("counted %d bank entries and %d movements, want 8 and 6", rep.BankEntries, rep.Movements)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "ghost-1") || !strings.Contains(buf.String(), "(unknown)") {
		t.Errorf("table: %v\n%s", err, buf.String())
	}

	// Another day has none of it; a grace that covers everything leaves
	// it all out.
	if rep, err := rc.Reconcile(ctx, "bca", day.AddDate(0, 0, -1)); err != nil || !rep.OK() {
		t.Errorf("yesterday: %+v, %v", rep.Differences, err)
	}
	rc.Grace = time.Hour
	if rep, err := rc.Reconcile(ctx, "bca", day); err != nil || !rep.OK() {
		t.Errorf("with an hour of grace: %+v, %v", rep.Differences, err)
	}
	if _, err := rc.Reconcile(ctx, "ovo", day); err == nil {
		t.Errorf("an e-wallet code was reconciled")
	}
}

func TestDay(t *testing.T) {
	d, err := Day("2026-03-01")
	if err != nil || !d.Equal(time.Date(2026, 2, 28, 17, 0, 0, 0, time.UTC)) {
		t.Errorf("Day: %v, %v", d, err)
	}
	for _, bad := range []string{"", "2026-3-1", "2026-02-30", "yesterday"} {
		if _, err := Day(bad); err == nil {
			t.Errorf("Day(%q) passed", bad)
		}
	}
}
