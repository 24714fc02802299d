package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// kafkaCluster starts the three-node cluster of deploy/kafka-cluster.sh
// for this test and returns its brokers and a function running the
// script's other commands (kill N, start N). Without Java the test skips,
// or fails under DISBURSE_REQUIRE_SERVICES=1, as testenv does for the
// shared services.
func kafkaCluster(t *testing.T) (brokers []string, script func(args ...string)) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a three-node Kafka cluster")
	}
	if _, err := exec.LookPath("java"); err != nil {
		msg := "java not found: the three-node Kafka cluster (deploy/kafka-cluster.sh) needs a JDK 17+"
		if os.Getenv(testenv.EnvRequireServices) == "1" {
			t.Fatal(msg + " (DISBURSE_REQUIRE_SERVICES=1: a missing service fails the test)")
		}
		t.Skip(msg)
	}
	path, err := filepath.Abs(filepath.Join("..", "..", "deploy", "kafka-cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script = func(args ...string) {
		t.Helper()
		out, err := exec.Command(path, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kafka-cluster.sh %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 4000))
		}
	}
	// Registered before "up", so a failed start is stopped and logged too.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(path, "logs").CombinedOutput()
			t.Logf("--- kafka cluster logs ---\n%s", tail(string(out), 6000))
		}
		if os.Getenv("DISBURSE_KEEP_SERVICES") != "1" {
			_ = exec.Command(path, "down").Run()
		}
	})
	script("up")
	out, err := exec.Command(path, "env").Output()
	if err != nil {
		t.Fatal(err)
	}
	_, list, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	return strings.Split(list, ","), script
}

// TestReplicatedKafkaBrokerKilled runs the ledger and dispatch stages (and
// the outbox relay, where the binary has it) as processes on a three-node
// Kafka cluster whose topics have replication factor 3 and
// min.insync.replicas 2, as production runs them. Mid-flow it kills with
// SIGKILL the node leading the busiest request partition, sends more
// payouts while that node is down, restarts it and sends more: every payout ends, the
// bank received each exactly once, the books are clean, and the restarted
// node is back in every partition's in-sync set.
func TestReplicatedKafkaBrokerKilled(t *testing.T) {
	const perMerchant = 240
	merchants := []string{"m1", "m2", "m3"}
	pgURL := testenv.Postgres(t)
	began := time.Now()
	brokers, script := kafkaCluster(t)
	t.Logf("three-node cluster up in %s", time.Since(began).Round(time.Second))
	prefix, bin := testenv.TopicPrefix(t), buildBinary(t)
	if out, err := exec.Command(bin, "migrate", "--postgres-url", pgURL).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	pool, err := pgxpool.New(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Each merchant's payouts go out in three waves: before the kill,
	// while the node is down, and after it is back.
	first, second, third := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for _, m := range merchants {
		fixture.Merchant(t, pool, m, 1_000_000_000_000, api.DefaultSettings)
		ids := fixture.Pending(t, pool, m, "k", perMerchant, 10_000)
		first[m], second[m], third[m] = ids[:perMerchant/3], ids[perMerchant/3:2*perMerchant/3], ids[2*perMerchant/3:]
	}
	n := perMerchant * len(merchants)

	admin, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	topics := events.NewTopics(prefix)
	ctx := context.Background()
	// The roles would create the topics with the same flags; creating them
	// here first lets the test find partition leaders before any role runs.
	spec := processor.TopicSpec{Partitions: 4, ReplicationFactor: 3, MinInsyncReplicas: 2}
	if err := processor.EnsureTopicsWith(ctx, admin, spec, topics.All()...); err != nil {
		t.Fatal(err)
	}

	bankAddr := freeAddr(t)
	startProc(t, bin, "banksim", "banksim", "--addr", bankAddr)
	waitReady(t, "http://"+bankAddr+"/healthz")
	common := []string{"--postgres-url", pgURL, "--kafka-brokers", strings.Join(brokers, ","), "--topic-prefix", prefix,
		"--partitions", "4", "--kafka-replication-factor", "3", "--kafka-min-insync-replicas", "2"}
	workers := [][]string{
		{"worker", "--stages", "ledger"},
		{"worker", "--stages", "dispatch", "--bank-url", "http://" + bankAddr},
	}
	if slices.Contains(stageNames, "relay") {
		workers = append(workers, []string{"worker", "--stages", "relay"})
	}
	var procs []*proc
	for _, w := range workers {
		m := freeAddr(t)
		procs = append(procs, startProc(t, bin, w[2], append(append(w, "--metrics-addr", m), common...)...))
		waitReady(t, "http://"+m+"/readyz")
	}

	for _, m := range merchants {
		fixture.PublishRequests(t, admin, topics.Requests, m, first[m])
	}
	terminal := func() int {
		return fixture.Count(t, pool, `SELECT count(*) FROM disbursements WHERE status IN ('COMPLETED', 'FAILED')`)
	}
	waitFor(t, 90*time.Second, func() bool { return terminal() >= n/9 }, "a third of the first wave to end before the kill")

	victim := leaderOfBusiestPartition(t, admin, topics.Requests)
	script("kill", strconv.Itoa(int(victim)))
	t.Logf("killed node %d (SIGKILL) with %d of %d payouts ended", victim, terminal(), n)
	// Producing while the node is down: the partitions it led have new
	// leaders among the two in-sync replicas left, which still meet
	// min.insync.replicas, so acks=all writes succeed.
	for _, m := range merchants {
		fixture.PublishRequests(t, admin, topics.Requests, m, second[m])
	}
	time.Sleep(3 * time.Second) // the stages work on two nodes for a while
	script("start", strconv.Itoa(int(victim)))
	t.Logf("node %d restarted with %d of %d payouts ended", victim, terminal(), n)
	for _, m := range merchants {
		fixture.PublishRequests(t, admin, topics.Requests, m, third[m])
	}

	waitFor(t, 3*time.Minute, func() bool { return terminal() >= n }, "every payout to end")
	t.Logf("every payout ended %s after the test began", time.Since(began).Round(time.Second))
	for _, p := range procs {
		p.stop(t)
	}

	checkBankOnce(t, bankAddr, n)
	if got := fixture.Count(t, pool, `SELECT count(*) FROM journal_entries WHERE kind = 'debit'`); got != n {
		t.Errorf("%d debit entries for %d payouts", got, n)
	}
	fixture.Audit(t, pool)

	// The restarted node caught up: every partition has three in-sync replicas again.
	adm := kadm.NewClient(admin)
	waitFor(t, 60*time.Second, func() bool {
		md, err := adm.ListTopics(ctx, topics.All()...)
		if err != nil {
			return false
		}
		for _, d := range md.Sorted() {
			for _, p := range d.Partitions {
				if len(p.Replicas) != 3 || len(p.ISR) != 3 {
					return false
				}
			}
		}
		return true
	}, "every partition to have three in-sync replicas after the restart")
}

// leaderOfBusiestPartition is the node leading the partition of topic
// that holds the most records.
func leaderOfBusiestPartition(t *testing.T, cl *kgo.Client, topic string) int32 {
	t.Helper()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	busiest, most := int32(-1), int64(-1)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > most {
			busiest, most = o.Partition, o.Offset
		}
	})
	md, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := md[topic].Partitions[busiest]
	if !ok || p.Leader < 1 {
		t.Fatalf("no leader known for %s partition %d", topic, busiest)
	}
	return p.Leader
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
