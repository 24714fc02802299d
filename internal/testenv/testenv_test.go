package testenv

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestPostgresIsolatedAndDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	server := connect(t, postgresServer(t)) // skips here if there is no server

	var a, b string
	t.Run("use", func(t *testing.T) {
		a, b = Postgres(t), Postgres(t)
		if a == b {
			t.Fatalf("two calls returned the same database %s", a)
		}
		ca := connect(t, a)
		cb := connect(t, b)
		if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
			t.Fatal(err)
		}
		var n int
		q := "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
		if err := cb.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("table created in %s is visible in %s", dbName(t, a), dbName(t, b))
		}
		// Leave ca and cb open: the cleanup must drop the databases anyway.
	})
	if t.Failed() {
		return
	}
	for _, u := range []string{a, b} {
		var exists bool
		q := "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)"
		if err := server.QueryRow(ctx, q, dbName(t, u)).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s still exists after its test ended", dbName(t, u))
		}
	}
}

func TestKafkaRoundTripAndCleanup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	brokers := Kafka(t) // skips here if there is no broker
	var topic string
	t.Run("use", func(t *testing.T) {
		topic = TopicPrefix(t) + "ping"
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(brokers...),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		fetches := cl.PollRecords(ctx, 1)
		if err := fetches.Err(); err != nil {
			t.Fatal(err)
		}
		if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
			t.Fatalf("consumed %v, want one record \"hello\"", recs)
		}
	})
	if t.Failed() {
		return
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Deletion is acknowledged before every broker's metadata drops the
	// topic: give the metadata a few seconds to catch up.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		topics, err := kadm.NewClient(cl).ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !topics.Has(topic) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s still exists 10s after its test ended", topic)
		}
	}
}

func TestTopicPrefix(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9-]+$`)
	seen := map[string]bool{}
	for _, name := range []string{"plain", "with spaces/and#more", strings.Repeat("long", 40), "日本"} {
		t.Run(name, func(t *testing.T) {
			for range 3 {
				p := TopicPrefix(t)
				if !valid.MatchString(p) {
					t.Errorf("prefix %q has characters Kafka topic names should not use", p)
				}
				if len(p) > 100 {
					t.Errorf("prefix %q is %d characters long", p, len(p))
				}
				if seen[p] {
					t.Errorf("prefix %q returned twice", p)
				}
				seen[p] = true
			}
		})
	}
}

func TestMissingMessage(t *testing.T) {
	for _, tc := range []struct {
		required bool
		fatal    bool
	}{{false, false}, {true, true}} {
		msg, fatal := missingMessage("postgres", EnvPostgresURL, tc.required)
		if fatal != tc.fatal {
			t.Errorf("required=%v: fatal=%v, want %v", tc.required, fatal, tc.fatal)
		}
		for _, want := range []string{"postgres not available", "make services-up", "deploy/services.sh env", EnvPostgresURL} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not mention %q", msg, want)
			}
		}
	}
}

func connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func dbName(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(p.Path, "/")
}

func TestDockerAddr(t *testing.T) {
	for _, tc := range []struct {
		host          string
		network, addr string
		ok            bool
	}{
		{"unix:///run/user/1000/docker.sock", "unix", "/run/user/1000/docker.sock", true},
		{"tcp://10.0.0.5:2376", "tcp", "10.0.0.5:2376", true},
		{"ssh://me@box", "", "", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tc.host)
			network, addr, ok := dockerAddr()
			if network != tc.network || addr != tc.addr || ok != tc.ok {
				t.Errorf("dockerAddr() = %q, %q, %v; want %q, %q, %v", network, addr, ok, tc.network, tc.addr, tc.ok)
			}
		})
	}
}
