package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// TestLedgerKilledMidBatch kills the ledger process with SIGKILL while it
// works through 20,000 requests, restarts it, and checks that every payout
// was debited exactly once.
func TestLedgerKilledMidBatch(t *testing.T) {
	const n = 20_000
	pgURL := testenv.Postgres(t)
	brokers := testenv.Kafka(t)
	prefix := testenv.TopicPrefix(t)
	bin := buildBinary(t)
	if out, err := exec.Command(bin, "migrate", "--postgres-url", pgURL).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	pool, err := pgxpool.New(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fixture.Merchant(t, pool, "m1", 1_000_000_000_000, api.DefaultSettings)
	ids := fixture.Pending(t, pool, "m1", "k", n, 10_000)

	topics := events.NewTopics(prefix)
	admin, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := processor.EnsureTopics(context.Background(), admin, 4, topics.All()...); err != nil {
		t.Fatal(err)
	}
	fixture.PublishRequests(t, admin, topics.Requests, "m1", ids)

	args := []string{"worker", "--stages", "ledger", "--postgres-url", pgURL, "--kafka-brokers", strings.Join(brokers, ","),
		"--topic-prefix", prefix, "--partitions", "4"}
	debited := func() int {
		return fixture.Count(t, pool, `SELECT count(*) FROM disbursements WHERE status <> 'PENDING'`)
	}

	first := startProc(t, bin, "ledger-1", append(args, "--metrics-addr", freeAddr(t))...)
	deadline := time.Now().Add(60 * time.Second)
	for debited() < n/10 {
		if time.Now().After(deadline) {
			t.Fatal("the first ledger process debited too little in 60s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL: no chance to finish or commit
		t.Fatal(err)
	}
	<-first.done
	killedAt := debited()
	if killedAt >= n {
		t.Fatalf("the whole run finished before the kill (%d debited); nothing was tested", killedAt)
	}
	t.Logf("killed the ledger process with %d of %d payouts debited", killedAt, n)

	second := startProc(t, bin, "ledger-2", append(args, "--metrics-addr", freeAddr(t))...)
	deadline = time.Now().Add(120 * time.Second)
	for debited() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d payouts debited after the restart", debited(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	second.stop(t)

	if got := fixture.Count(t, pool, `SELECT count(*) FROM journal_entries WHERE kind = 'debit'`); got != n {
		t.Errorf("%d debit entries for %d payouts", got, n)
	}
	fixture.Audit(t, pool)
}
