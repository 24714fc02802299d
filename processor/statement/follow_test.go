package statement

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/connectors/httpbank"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

var ctx = context.Background()

// env is a fresh database with merchant m1 and a sandbox bank whose
// transfers return in returnDelay.
type env struct {
	pool    *pgxpool.Pool
	bank    *banksim.Server
	client  *httpbank.Client
	ledger  *ledger.Store
	payouts *payout.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 10_000_000_000, merchant.Settings{FeeFlat: 2500})
	bank := banksim.New(banksim.Options{CompleteDelay: 50 * time.Millisecond, ReturnDelay: 100 * time.Millisecond, Seed: 1})
	ts := httptest.NewServer(bank.Handler())
	t.Cleanup(ts.Close)
	return &env{pool: pool, bank: bank, client: httpbank.New(ts.URL, httpbank.WithTimeout(5*time.Second)),
		ledger: ledger.NewStore(pool), payouts: payout.NewStore(pool)}
}

// debited makes n PROCESSING payouts of amount.
func (e *env) debited(t *testing.T, tag string, n int, amount int64) []string {
	t.Helper()
	ids := fixture.Pending(t, e.pool, "m1", tag, n, amount)
	if _, _, err := e.ledger.ApplyDebits(ctx, ids); err != nil {
		t.Fatal(err)
	}
	return ids
}

// send sends each payout to bca with the account given for it.
func (e *env) send(t *testing.T, ids []string, account func(i int) string, amount int64) {
	t.Helper()
	for i, id := range ids {
		_, err := e.client.Transfer(ctx, connectors.TransferRequest{Reference: id, BankCode: "bca", AccountNumber: account(i), Amount: amount, Currency: "IDR"})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) follower(instance string) *Follower {
	return &Follower{Bank: e.client, Cursors: NewCursors(e.pool), Payouts: e.payouts, Ledger: e.ledger,
		Banks: []string{"bca"}, Every: 20 * time.Millisecond, Lease: 500 * time.Millisecond, PageSize: 7,
		SettleAfter: 100 * time.Millisecond, Instance: instance}
}

func (e *env) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	return fixture.Count(t, e.pool, q, args...)
}

// settleAll settles payouts COMPLETED, as their dispatch worker would.
func (e *env) settleAll(t *testing.T, ids []string) {
	t.Helper()
	for _, id := range ids {
		if _, _, err := e.ledger.Settle(ctx, id, ledger.Outcome{Completed: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statementLen reads bca's whole statement.
func statementLen(t *testing.T, e *env) int {
	t.Helper()
	n, after := 0, ""
	for {
		p, err := e.client.Statement(ctx, "bca", connectors.StatementQuery{After: after, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Entries)
		after = p.Next
		if !p.More {
			return n
		}
	}
}

// TestFollowerRace: two followers run at once on one bank, one of them is
// stopped halfway and a third joins; every return is applied exactly once
// (one return entry each, balances right, audit clean), only one follower
// reads at a time, and the cursor ends at the statement's end.
func TestFollowerRace(t *testing.T) {
	e := newEnv(t)
	ids := e.debited(t, "race", 60, 100_000)
	returned := map[string]bool{}
	e.send(t, ids, func(i int) string {
		if i%3 == 0 {
			returned[ids[i]] = true
			return "1234563333"
		}
		return "1234567890"
	}, 100_000)
	e.settleAll(t, ids)
	waitFor(t, "the bank's returns", func() bool { return statementLen(t, e) == 80 })

	// Only one holds the lease.
	a, b := e.follower("a"), e.follower("b")
	if _, held, err := a.Step(ctx, "bca", "a"); err != nil || !held {
		t.Fatalf("first follower: held %v, %v", held, err)
	}
	if _, held, err := b.Step(ctx, "bca", "b"); err != nil || held {
		t.Fatalf("second follower while the first holds the lease: held %v, %v", held, err)
	}

	actx, stopA := context.WithCancel(ctx)
	bctx, stopB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = a.Run(actx) }()
	go func() { defer wg.Done(); _ = b.Run(bctx) }()
	waitFor(t, "some returns", func() bool {
		return e.count(t, `SELECT count(*) FROM disbursements WHERE status = 'REVERSED'`) > 0
	})
	stopA() // mid-statement
	c := e.follower("c")
	cctx, stopC := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); _ = c.Run(cctx) }()
	waitFor(t, "every return", func() bool {
		return e.count(t, `SELECT count(*) FROM disbursements WHERE status = 'REVERSED'`) == len(returned)
	})
	stopC()
	stopB()
	wg.Wait()

	if n := e.count(t, `SELECT count(*) FROM journal_entries WHERE kind = 'return'`); n != len(returned) {
		t.Errorf("%d return entries, want %d", n, len(returned))
	}
	for id := range returned {
		if n := e.count(t, `SELECT count(*) FROM payout_events WHERE disbursement_id = $1 AND status = 'REVERSED'`, id); n != 1 {
			t.Errorf("%s: %d REVERSED events", id, n)
		}
	}
	bal, err := e.ledger.Balance(ctx, "m1", payout.Sandbox, "IDR")
	if err != nil {
		t.Fatal(err)
	}
	// Every payout's fee, and the amounts of those not returned.
	want := int64(10_000_000_000 - 60*2500 - (60-len(returned))*100_000)
	if bal.Available != want {
		t.Errorf("available %d, want %d", bal.Available, want)
	}
	cur, err := NewCursors(e.pool).Cursor(ctx, payout.Sandbox, "bca")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e.client.Statement(ctx, "bca", connectors.StatementQuery{After: cur}); err != nil || len(p.Entries) != 0 {
		t.Errorf("stored cursor %q is not at the end: %d entries after it, %v", cur, len(p.Entries), err)
	}
	fixture.Audit(t, e.pool)
}

// TestFollowerRestartMidStatement: entries applied by a follower that died
// before storing its cursor are read again by the next one and change
// nothing the second time.
func TestFollowerRestartMidStatement(t *testing.T) {
	e := newEnv(t)
	ids := e.debited(t, "restart", 10, 100_000)
	e.send(t, ids, func(int) string { return "1234563333" }, 100_000)
	e.settleAll(t, ids)
	waitFor(t, "the bank's returns", func() bool { return statementLen(t, e) == 20 })

	first := e.follower("first")
	first.defaults()
	page, err := e.client.Statement(ctx, "bca", connectors.StatementQuery{Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	// The first follower applies the whole page, then dies before storing
	// the cursor.
	if n, waiting, err := first.apply(ctx, "bca", page.Entries); err != nil || waiting || n != 20 {
		t.Fatalf("apply: %d, waiting %v, %v", n, waiting, err)
	}
	if cur, _ := NewCursors(e.pool).Cursor(ctx, payout.Sandbox, "bca"); cur != "" {
		t.Fatalf("cursor %q stored", cur)
	}
	before := e.count(t, `SELECT count(*) FROM journal_entries`)
	events := e.count(t, `SELECT count(*) FROM payout_events`)

	second := e.follower("second")
	for {
		more, held, err := second.Step(ctx, "bca", "second")
		if err != nil || !held {
			t.Fatalf("step: held %v, %v", held, err)
		}
		if !more {
			break
		}
	}
	if n := e.count(t, `SELECT count(*) FROM journal_entries`); n != before {
		t.Errorf("re-reading the statement booked %d more journal entries", n-before)
	}
	if n := e.count(t, `SELECT count(*) FROM payout_events`); n != events {
		t.Errorf("re-reading the statement wrote %d more events", n-events)
	}
	if n := e.count(t, `SELECT count(*) FROM disbursements WHERE status = 'REVERSED'`); n != 10 {
		t.Errorf("%d REVERSED, want 10", n)
	}
	fixture.Audit(t, e.pool)
}

// TestFollowerSettlesUnknownOutcomes: a payout still PROCESSING here (its
// worker gone) that the statement shows paid, paid then returned, or
// rejected is settled from the statement, but only once the entry is
// SettleAfter old: until then the cursor waits before it.
func TestFollowerSettlesUnknownOutcomes(t *testing.T) {
	e := newEnv(t)
	ids := e.debited(t, "unknown", 3, 100_000)
	accounts := []string{"1234567890", "1234563333", "1234561111"}
	e.send(t, ids, func(i int) string { return accounts[i] }, 100_000)
	waitFor(t, "the bank's entries", func() bool { return statementLen(t, e) == 4 })

	f := e.follower("f")
	f.SettleAfter = time.Hour
	if _, _, err := f.Step(ctx, "bca", "f"); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM disbursements WHERE status = 'PROCESSING'`); n != 3 {
		t.Fatalf("settled before SettleAfter: %d PROCESSING left", n)
	}
	if cur, _ := NewCursors(e.pool).Cursor(ctx, payout.Sandbox, "bca"); cur != "" {
		t.Fatalf("the cursor moved past an entry it waits for: %q", cur)
	}
	f.SettleAfter = time.Millisecond
	for {
		more, _, err := f.Step(ctx, "bca", "f")
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	want := []payout.Status{payout.Completed, payout.Reversed, payout.Failed}
	for i, id := range ids {
		d, err := e.payouts.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != want[i] {
			t.Errorf("%s (%s): %s, want %s", id, accounts[i], d.Status, want[i])
		}
	}
	if d, _ := e.payouts.Load(ctx, ids[2]); d.FailureCode == nil || *d.FailureCode != connectors.FailureBankRejected {
		t.Errorf("rejected payout's failure code: %v", d.FailureCode)
	}
	fixture.Audit(t, e.pool)
}

// TestFollowerBadCursor: a stored cursor the bank does not know stops the
// follower with connectors.ErrBadCursor and changes nothing, unless it is
// told to read the statement again from the start.
func TestFollowerBadCursor(t *testing.T) {
	e := newEnv(t)
	f := e.follower("f")
	if _, err := e.pool.Exec(ctx, `INSERT INTO statement_cursors (bank, environment, cursor) VALUES ('bca', 'sandbox', 'gone-42')`); err != nil {
		t.Fatal(err)
	}
	_, held, err := f.Step(ctx, "bca", "f")
	if !held || !errors.Is(err, connectors.ErrBadCursor) {
		t.Fatalf("held %v, err %v; want ErrBadCursor", held, err)
	}
	if cur, _ := NewCursors(e.pool).Cursor(ctx, payout.Sandbox, "bca"); cur != "gone-42" {
		t.Errorf("cursor changed to %q", cur)
	}

	// With RestartOnBadCursor (the sandbox bank restarted), the follower
	// reads the statement again from the start and applies it.
	ids := e.debited(t, "restart", 2, 100_000)
	e.send(t, ids, func(int) string { return "1234563333" }, 100_000)
	e.settleAll(t, ids)
	waitFor(t, "the bank's returns", func() bool { return statementLen(t, e) == 4 })
	f.RestartOnBadCursor = true
	for i := 0; ; i++ {
		more, _, err := f.Step(ctx, "bca", "f")
		if err != nil {
			t.Fatal(err)
		}
		if !more || i > 10 {
			break
		}
	}
	if n := e.count(t, `SELECT count(*) FROM disbursements WHERE status = 'REVERSED'`); n != 2 {
		t.Errorf("%d REVERSED after restarting the statement, want 2", n)
	}
	fixture.Audit(t, e.pool)
}

// TestFollowerConcurrentApply: two followers applying the same entries at
// the same moment (a lease that lapsed mid-page) move each payout once.
func TestFollowerConcurrentApply(t *testing.T) {
	e := newEnv(t)
	ids := e.debited(t, "both", 20, 100_000)
	e.send(t, ids, func(int) string { return "1234563333" }, 100_000)
	e.settleAll(t, ids)
	waitFor(t, "the bank's returns", func() bool { return statementLen(t, e) == 40 })
	page, err := e.client.Statement(ctx, "bca", connectors.StatementQuery{Limit: 40})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, name := range []string{"x", "y"} {
		f := e.follower(name)
		f.defaults()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, _, err := f.apply(ctx, "bca", page.Entries); err != nil || n != 40 {
				t.Errorf("%s: applied %d, %v", name, n, err)
			}
		}()
	}
	wg.Wait()
	if n := e.count(t, `SELECT count(*) FROM journal_entries WHERE kind = 'return'`); n != 20 {
		t.Errorf("%d return entries, want 20", n)
	}
	if n := e.count(t, `SELECT count(*) FROM payout_events WHERE status = 'REVERSED'`); n != 20 {
		t.Errorf("%d REVERSED events, want 20", n)
	}
	fixture.Audit(t, e.pool)
}
