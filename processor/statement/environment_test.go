package statement

import (
	"slices"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/payout"
)

// TestFollowerPerEnvironment reads one bank statement listing sandbox
// payouts as if it were production's gateway (a gateway shared by both
// environments by mistake): the production follower keeps a cursor and a
// lease of its own and applies nothing, and production's reconciliation
// counts none of sandbox's ledger movements; the sandbox follower then
// applies every return, from the start of its own cursor.
func TestFollowerPerEnvironment(t *testing.T) {
	e := newEnv(t)
	ids := e.debited(t, "env", 12, 100_000)
	var returned []string
	e.send(t, ids, func(i int) string {
		if i%4 == 0 {
			returned = append(returned, ids[i])
			return "1234563333"
		}
		return "1234567890"
	}, 100_000)
	e.settleAll(t, ids)
	waitFor(t, "the bank's returns", func() bool { return statementLen(t, e) == 12+len(returned) })

	prod := e.follower("p")
	prod.Environment = payout.Production
	sb := e.follower("s")
	// Each environment's lease is its own: both hold bca at once.
	if _, held, err := prod.Step(ctx, "bca", "p"); err != nil || !held {
		t.Fatalf("production step: held %v, %v", held, err)
	}
	if _, held, err := NewCursors(e.pool).Acquire(ctx, payout.Sandbox, "bca", "s", time.Second); err != nil || !held {
		t.Fatalf("sandbox lease while production's is held: %v %v", held, err)
	}
	for range 20 {
		more, _, err := prod.Step(ctx, "bca", "p")
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	if n := e.count(t, `SELECT count(*) FROM disbursements WHERE status = 'REVERSED'`); n != 0 {
		t.Fatalf("the production follower reversed %d sandbox payouts", n)
	}
	prodCur, _ := NewCursors(e.pool).Cursor(ctx, payout.Production, "bca")
	sbCur, _ := NewCursors(e.pool).Cursor(ctx, payout.Sandbox, "bca")
	if prodCur == "" || sbCur != "" {
		t.Fatalf("cursors: production %q (want the statement's end), sandbox %q (want its start)", prodCur, sbCur)
	}

	y, m, d := time.Now().In(connectors.Jakarta).Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, connectors.Jakarta)
	rep, err := (&Reconciler{Bank: e.client, Environment: payout.Production, Payouts: e.payouts, Ledger: e.ledger}).Reconcile(ctx, "bca", day)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Environment != payout.Production || rep.Movements != 0 || len(rep.Differences) != 12+len(returned) {
		t.Errorf("production reconciliation of a statement of sandbox payouts: %d movements, %d differences %+v; want 0, and every payment and return unknown here",
			rep.Movements, len(rep.Differences), rep.Differences)
	}
	for _, diff := range rep.Differences {
		if diff.Status != "" {
			t.Errorf("production reconciliation shows sandbox payout %s with its status %s", diff.Reference, diff.Status)
		}
	}

	waitFor(t, "the sandbox follower's returns", func() bool {
		if _, _, err := sb.Step(ctx, "bca", "s"); err != nil {
			t.Fatal(err)
		}
		return e.count(t, `SELECT count(*) FROM disbursements WHERE status = 'REVERSED'`) == len(returned)
	})
	got := []string{}
	for _, id := range ids {
		if d, err := e.payouts.Load(ctx, id); err == nil && d.Status == payout.Reversed {
			got = append(got, id)
		}
	}
	if !slices.Equal(got, returned) {
		t.Errorf("reversed %v, want %v", got, returned)
	}
	rep, err = (&Reconciler{Bank: e.client, Environment: payout.Sandbox, Payouts: e.payouts, Ledger: e.ledger}).Reconcile(ctx, "bca", day)
	if err != nil || !rep.OK() || rep.Movements != 12+len(returned) {
		t.Errorf("sandbox reconciliation: %d movements, differences %+v, %v", rep.Movements, rep.Differences, err)
	}
}
