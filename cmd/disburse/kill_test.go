package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

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
	env := newProcessEnv(t, n)
	bin, pgURL, brokers, prefix, pool, admin, topics, ids := env.bin, env.pgURL, env.brokers, env.prefix, env.pool, env.admin, env.topics, env.ids
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

// processEnv is what the tests that run roles as processes and kill them
// start from: the built binary, a migrated database with merchant m1 and n
// PENDING payouts, and the topics under a fresh prefix.
type processEnv struct {
	bin, pgURL, prefix string
	brokers            []string
	pool               *pgxpool.Pool
	admin              *kgo.Client
	topics             events.Topics
	ids                []string
}

func newProcessEnv(t *testing.T, n int) processEnv {
	t.Helper()
	return newProcessEnvOn(t, testenv.Postgres(t), n)
}

// newProcessEnvOn is newProcessEnv on the empty database at pgURL (a
// private cluster's, for a test that restarts Postgres).
func newProcessEnvOn(t *testing.T, pgURL string, n int) processEnv {
	t.Helper()
	e := processEnv{pgURL: pgURL, brokers: testenv.Kafka(t), prefix: testenv.TopicPrefix(t), bin: buildBinary(t)}
	if out, err := exec.Command(e.bin, "migrate", "--postgres-url", e.pgURL).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	var err error
	if e.pool, err = pgxpool.New(context.Background(), e.pgURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.pool.Close)
	fixture.Merchant(t, e.pool, "m1", 1_000_000_000_000, api.DefaultSettings)
	e.ids = fixture.Pending(t, e.pool, "m1", "k", n, 10_000)
	e.topics = events.NewTopics(e.prefix)
	if e.admin, err = processor.NewClient(e.brokers); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.admin.Close)
	if err := processor.EnsureTopics(context.Background(), e.admin, 4, e.topics.All()...); err != nil {
		t.Fatal(err)
	}
	return e
}
