package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// TestPostgresRestartMidSettleGroup takes PostgreSQL itself away while the
// bank has answered payouts whose settle group has not committed: the
// server is stopped with pg_ctl -m immediate (every backend aborted, no
// checkpoint, as in a crash), kept down for a few seconds, and started
// again, replaying its WAL. The worker processes are not restarted: they
// must wait for Postgres and carry on by themselves. Half of the requests
// reach Kafka while Postgres is down, so the ledger stage meets the outage
// too. Then every payout must be terminal, the bank must have received
// each exactly once and agree with its status, each payout's journal
// entries and postings must be the movements of ledger/doc.go, the
// dispatch records (bank calls, leases, checks) closed, the event feed
// complete in Postgres and on the status topic, and the audit clean.
//
// The server is a private cluster (testenv.PrivatePostgres): the shared one
// serves every other test running at the same time.
func TestPostgresRestartMidSettleGroup(t *testing.T) {
	const (
		n    = 1500
		down = 3 * time.Second
	)
	began := time.Now()
	cluster := testenv.PrivatePostgres(t)
	env := newProcessEnvOn(t, cluster.URL(), n)
	bin, pgURL, brokers, prefix, pool, admin, topics, ids := env.bin, env.pgURL, env.brokers, env.prefix, env.pool, env.admin, env.topics, env.ids

	bankAddr := freeAddr(t)
	banks := startProc(t, bin, "banksim", "banksim", "--addr", bankAddr)
	waitReady(t, "http://"+bankAddr+"/healthz")
	common := []string{"--postgres-url", pgURL, "--kafka-brokers", strings.Join(brokers, ","), "--topic-prefix", prefix, "--partitions", "4"}
	ledgerProc := startProc(t, bin, "ledger", append([]string{"worker", "--stages", "ledger,relay", "--metrics-addr", freeAddr(t)}, common...)...)
	// Groups that stay open for a second, so the stop finds one in flight.
	dispatchProc := startProc(t, bin, "dispatch", append([]string{"worker", "--stages", "dispatch", "--metrics-addr", freeAddr(t),
		"--bank-url", "http://" + bankAddr, "--settle-every", "1s", "--settle-group", "5000"}, common...)...)
	workers := []*proc{ledgerProc, dispatchProc}
	alive := func(when string) {
		t.Helper()
		for _, p := range workers {
			select {
			case err := <-p.done:
				t.Fatalf("%s exited %s: %v", p.name, when, err)
			default:
			}
		}
	}

	// All but 200 now (claims and parks in full flow at the stop); those
	// while Postgres is down.
	first, second := ids[:n-200], ids[n-200:]
	fixture.PublishRequests(t, admin, topics.Requests, "m1", first)
	probe := settleProbe{t: t, pool: pool, bankAddr: bankAddr}
	gap := probe.waitInFlight("the restart")
	terminalBefore := probe.terminal()
	if err := cluster.Stop(testenv.StopImmediate); err != nil {
		t.Fatal(err)
	}
	t.Logf("%.1fs: stopped Postgres (-m immediate) with %d answered payouts unsettled, %d of %d terminal",
		time.Since(began).Seconds(), gap, terminalBefore, n)
	fixture.PublishRequests(t, admin, topics.Requests, "m1", second)
	time.Sleep(down)
	alive("while Postgres was down")
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	t.Logf("%.1fs: Postgres started again after %s down", time.Since(began).Seconds(), down)

	// Payouts parked while Postgres was down come back on their park
	// backoff (up to 30 s), so a minute is the bound, not the expectation.
	deadline := restarted.Add(time.Minute)
	for probe.terminal() < n {
		alive("after Postgres came back")
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d payouts ended a minute after Postgres came back", probe.terminal(), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%.1fs: every payout terminal, %.1f s after Postgres came back", time.Since(began).Seconds(), time.Since(restarted).Seconds())
	// The relay (in the ledger process) must publish the whole feed before
	// the workers stop.
	checkStatusTopic(t, pool, brokers, topics)
	dispatchProc.stop(t)
	ledgerProc.stop(t)

	checkBankOnce(t, bankAddr, n)
	checkBankAgrees(t, pool, bankAddr)
	checkPayoutEntries(t, pool)
	checkDispatchRecords(t, pool)
	fixture.Audit(t, pool)
	banks.stop(t)
}

// checkBankAgrees reads each payout's record from the sandbox bank's own
// ledger: received once, with the status the payout has here.
func checkBankAgrees(t *testing.T, pool *pgxpool.Pool, bankAddr string) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, status FROM disbursements ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]string{}
	for rows.Next() {
		var id, status string
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		ours[id] = status
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for id, status := range ours {
		resp, err := http.Get("http://" + bankAddr + "/admin/ledger/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Received int    `json:"received"`
			Status   string `json:"status"`
		}
		err = json.NewDecoder(resp.Body).Decode(&rec)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Received != 1 || rec.Status != status {
			if bad++; bad <= 10 {
				t.Errorf("payout %s is %s here; the bank received it %d time(s) and has it %s", id, status, rec.Received, rec.Status)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d payouts disagree with the bank in all", bad)
	}
}

// checkPayoutEntries checks each payout's journal entries against its
// status (DESIGN.md invariants 1 and 2, ledger/doc.go's movements): a
// COMPLETED payout has exactly a debit and a settle, a FAILED one a debit
// and a fail, in that order, and each entry posts exactly the movement's
// amounts to the merchant's accounts.
func checkPayoutEntries(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT d.id, d.status, d.amount, d.fee,
			coalesce(string_agg(e.kind || ':' || p.moves, ' ' ORDER BY e.id), '')
		FROM disbursements d
		LEFT JOIN journal_entries e ON e.disbursement_id = d.id
		LEFT JOIN LATERAL (
			SELECT string_agg(a.kind || '=' || p.amount, ',' ORDER BY a.kind) AS moves
			FROM postings p JOIN accounts a ON a.id = p.account_id
			WHERE p.entry_id = e.id AND p.amount <> 0
				AND a.merchant_id = d.merchant_id AND a.environment = d.environment AND a.currency = d.currency
		) p ON true
		GROUP BY d.id, d.status, d.amount, d.fee`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	bad, seen := 0, 0
	for rows.Next() {
		var id, status, got string
		var amount, fee int64
		if err := rows.Scan(&id, &status, &amount, &fee, &got); err != nil {
			t.Fatal(err)
		}
		seen++
		want := expectedEntries(status, amount, fee)
		if got != want {
			if bad++; bad <= 10 {
				t.Errorf("payout %s is %s with entries %q, want %q", id, status, got, want)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if bad > 10 {
		t.Errorf("... %d of %d payouts have wrong entries", bad, seen)
	}
}

// expectedEntries is the journal of a terminal payout as checkPayoutEntries
// reads it: "kind:account=amount,..." per entry, accounts in name order,
// zero postings left out.
func expectedEntries(status string, amount, fee int64) string {
	moves := func(kind string, m ...any) string {
		var parts []string
		for i := 0; i < len(m); i += 2 {
			if v := m[i+1].(int64); v != 0 {
				parts = append(parts, fmt.Sprintf("%s=%d", m[i], v))
			}
		}
		return kind + ":" + strings.Join(parts, ",")
	}
	total := amount + fee
	debit := moves("debit", "available", -total, "in_flight", total)
	switch status {
	case "COMPLETED":
		return debit + " " + moves("settle", "fees", fee, "in_flight", -total, "paid_out", amount)
	case "FAILED":
		return debit + " " + moves("fail", "available", total, "in_flight", -total)
	}
	return "(a terminal status, not " + status + ")"
}

// checkDispatchRecords checks what the dispatch stage leaves in Postgres:
// one transfer call per payout, answered; no call left open; no live lease
// and no pending reconciler check; and the event feed in Postgres a clean
// PENDING, PROCESSING, terminal sequence for every payout.
func checkDispatchRecords(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for _, c := range []struct{ what, query string }{
		{"payouts without exactly one answered transfer call", `SELECT count(*) FROM disbursements d WHERE
			(SELECT count(*) FROM bank_calls c WHERE c.disbursement_id = d.id AND c.kind = 'transfer' AND c.outcome = 'answered') <> 1`},
		{"transfer calls the bank could have received besides the answered one", `SELECT count(*) FROM bank_calls
			WHERE kind = 'transfer' AND outcome NOT IN ('answered', 'not_sent', 'not_received')`},
		{"bank calls still open", `SELECT count(*) FROM bank_calls WHERE outcome = 'started' OR finished_at IS NULL`},
		{"live dispatch leases", `SELECT count(*) FROM dispatch_leases WHERE expires_at > now()`},
		{"reconciler checks left", `SELECT count(*) FROM payout_checks`},
		{"payouts whose event feed is not PENDING, PROCESSING, then their status", `SELECT count(*) FROM disbursements d WHERE
			(SELECT string_agg(e.status, ',' ORDER BY e.version) FROM payout_events e WHERE e.disbursement_id = d.id)
				IS DISTINCT FROM 'PENDING,PROCESSING,' || d.status`},
	} {
		if got := fixture.Count(t, pool, c.query); got != 0 {
			t.Errorf("%d %s", got, c.what)
		}
	}
}

// checkStatusTopic reads the status topic from the start until it carries
// every change in Postgres' event feed after creation (repeats are
// allowed: the relay publishes again what it published before a crash),
// failing after 30 s.
func checkStatusTopic(t *testing.T, pool *pgxpool.Pool, brokers []string, topics events.Topics) {
	t.Helper()
	want := map[string]string{} // "id/version" -> status
	// Creation (PENDING) is not a change: the relay publishes the rest.
	rows, err := pool.Query(context.Background(), `SELECT disbursement_id, version, status FROM payout_events WHERE status <> 'PENDING'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, status string
		var version int
		if err := rows.Scan(&id, &version, &status); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("%s/%d", id, version)] = status
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	cl, err := processor.NewClient(brokers, kgo.ConsumeTopics(topics.Status), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	records := 0
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the status topic lacks %d of the event feed's changes after 30 s (%d records read)", len(want), records)
		}
		fs.EachRecord(func(r *kgo.Record) {
			records++
			var ev events.Status
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("status record at offset %d: %v", r.Offset, err)
			}
			key := fmt.Sprintf("%s/%d", ev.DisbursementID, ev.Version)
			if status, ok := want[key]; ok {
				if status != ev.Status {
					t.Errorf("status topic has %s as %s, the event feed as %s", key, ev.Status, status)
				}
				delete(want, key)
			}
		})
	}
	t.Logf("the status topic carries the whole event feed (%d records)", records)
}
