package main

import (
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
)

// TestDispatchWorkerKilled runs two dispatch processes in one group on the
// real Kafka and Postgres, kills one with SIGKILL while payouts are at the
// banks, and checks that every payout ends, none is sent twice (the sandbox
// bank's own ledger) and the audit holds.
func TestDispatchWorkerKilled(t *testing.T) {
	const n = 600
	env := newProcessEnv(t, n)
	bin, pgURL, brokers, prefix, pool, admin, topics, ids := env.bin, env.pgURL, env.brokers, env.prefix, env.pool, env.admin, env.topics, env.ids

	bankAddr := freeAddr(t)
	startProc(t, bin, "banksim", "banksim", "--addr", bankAddr)
	waitReady(t, "http://"+bankAddr+"/healthz")
	common := []string{"--postgres-url", pgURL, "--kafka-brokers", strings.Join(brokers, ","), "--topic-prefix", prefix, "--partitions", "4"}
	ledgerProc := startProc(t, bin, "ledger", append([]string{"worker", "--stages", "ledger,relay", "--metrics-addr", freeAddr(t)}, common...)...)
	dispatchArgs := func() []string {
		return append([]string{"worker", "--stages", "dispatch", "--metrics-addr", freeAddr(t), "--bank-url", "http://" + bankAddr}, common...)
	}
	victim := startProc(t, bin, "dispatch-1", dispatchArgs()...)
	survivor := startProc(t, bin, "dispatch-2", dispatchArgs()...)

	fixture.PublishRequests(t, admin, topics.Requests, "m1", ids)
	terminal := func() int {
		return fixture.Count(t, pool, `SELECT count(*) FROM disbursements WHERE status IN ('COMPLETED', 'FAILED')`)
	}
	deadline := time.Now().Add(90 * time.Second)
	for terminal() < n/5 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d payouts ended before the kill", terminal(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The payouts in someone's hands at the kill, the victim's among them.
	var held []string
	rows, err := pool.Query(t.Context(), `SELECT disbursement_id FROM dispatch_leases WHERE expires_at > now()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		held = append(held, id)
	}
	rows.Close()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	killedAt := time.Now()
	t.Logf("killed one dispatch worker with %d of %d payouts ended and %d leased", terminal(), n, len(held))

	// Issue 15: a killed worker's payouts are all terminal within 30 s.
	for {
		open := fixture.Count(t, pool, `SELECT count(*) FROM disbursements WHERE id = ANY($1) AND status NOT IN ('COMPLETED', 'FAILED')`, held)
		if open == 0 {
			t.Logf("every payout leased at the kill was terminal %.1fs after it", time.Since(killedAt).Seconds())
			break
		}
		if time.Since(killedAt) > 30*time.Second {
			t.Fatalf("%d of the %d payouts leased at the kill were still not terminal 30s after it", open, len(held))
		}
		time.Sleep(100 * time.Millisecond)
	}

	deadline = time.Now().Add(3 * time.Minute)
	for terminal() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d payouts ended after the kill", terminal(), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	survivor.stop(t)
	ledgerProc.stop(t)

	checkBankOnce(t, bankAddr, n)
	fixture.Audit(t, pool)
}
