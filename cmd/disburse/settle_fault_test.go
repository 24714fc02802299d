package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
)

// TestSettleGroupFaults breaks a dispatch process while the bank has
// answered payouts whose settle group has not committed yet: first its
// Postgres connections are cut (the group's transaction fails and must be
// retried), then it is killed with SIGKILL (the group is lost with the
// process, and the next owner must learn each answer from the bank). Every
// payout must end, none be sent twice (the sandbox bank's ledger), and the
// books must balance.
func TestSettleGroupFaults(t *testing.T) {
	const n = 1500
	env := newProcessEnv(t, n)
	bin, pgURL, brokers, prefix, pool, admin, topics, ids := env.bin, env.pgURL, env.brokers, env.prefix, env.pool, env.admin, env.topics, env.ids

	bankAddr := freeAddr(t)
	startProc(t, bin, "banksim", "banksim", "--addr", bankAddr)
	waitReady(t, "http://"+bankAddr+"/healthz")
	common := []string{"--postgres-url", pgURL, "--kafka-brokers", strings.Join(brokers, ","), "--topic-prefix", prefix, "--partitions", "4"}
	ledgerProc := startProc(t, bin, "ledger", append([]string{"worker", "--stages", "ledger,relay", "--metrics-addr", freeAddr(t)}, common...)...)
	// Groups that stay open for a second, so a fault finds one in flight.
	// The victim's connections are named, so they can be cut alone.
	victimURL := pgURL + "&application_name=settle-victim"
	if !strings.Contains(pgURL, "?") {
		victimURL = pgURL + "?application_name=settle-victim"
	}
	victimArgs := []string{"worker", "--stages", "dispatch", "--metrics-addr", freeAddr(t), "--bank-url", "http://" + bankAddr,
		"--settle-every", "1s", "--settle-group", "5000",
		"--postgres-url", victimURL, "--kafka-brokers", strings.Join(brokers, ","), "--topic-prefix", prefix, "--partitions", "4"}
	victim := startProc(t, bin, "dispatch-victim", victimArgs...)

	fixture.PublishRequests(t, admin, topics.Requests, "m1", ids)
	probe := settleProbe{t: t, pool: pool, bankAddr: bankAddr}
	terminal := probe.terminal

	gap := probe.waitInFlight("cutting Postgres")
	cut := fixture.Count(t, pool, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'settle-victim'`)
	t.Logf("cut %d Postgres connections of the dispatch process with %d answered payouts unsettled", cut, gap)
	if cut == 0 {
		t.Fatal("the dispatch process had no Postgres connection to cut")
	}

	gap = probe.waitInFlight("the SIGKILL")
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	t.Logf("killed the dispatch process with %d answered payouts unsettled, %d of %d terminal", gap, terminal(), n)

	survivor := startProc(t, bin, "dispatch-2", append([]string{"worker", "--stages", "dispatch", "--metrics-addr", freeAddr(t),
		"--bank-url", "http://" + bankAddr}, common...)...)
	deadline := time.Now().Add(3 * time.Minute)
	for terminal() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d payouts ended after the faults", terminal(), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	survivor.stop(t)
	ledgerProc.stop(t)

	checkBankOnce(t, bankAddr, n)
	if got := fixture.Count(t, pool, `SELECT count(*) FROM dispatch_leases WHERE expires_at > now()`); got != 0 {
		t.Errorf("%d leases still live after every payout ended", got)
	}
	fixture.Audit(t, pool)
}

// settleProbe watches a dispatch run from outside: the payouts terminal in
// Postgres, and the transfers the sandbox bank at bankAddr has received.
type settleProbe struct {
	t        *testing.T
	pool     *pgxpool.Pool
	bankAddr string
}

func (p settleProbe) terminal() int {
	return fixture.Count(p.t, p.pool, `SELECT count(*) FROM disbursements WHERE status IN ('COMPLETED', 'FAILED')`)
}

func (p settleProbe) bankTransfers() int {
	p.t.Helper()
	resp, err := http.Get("http://" + p.bankAddr + "/admin/ledger")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct {
		Transfers int `json:"transfers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		p.t.Fatal(err)
	}
	return l.Transfers
}

// waitInFlight waits until at least 20 payouts are answered but unsettled
// (the bank has them, Postgres does not have them terminal yet): a settle
// group in flight. It returns how many.
func (p settleProbe) waitInFlight(what string) int {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if gap := p.bankTransfers() - p.terminal(); gap >= 20 {
			return gap
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no settle group in flight before %s (%d transfers at the bank, %d terminal)", what, p.bankTransfers(), p.terminal())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
