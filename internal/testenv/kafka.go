package testenv

import (
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka returns the addresses of a real Apache Kafka broker: those in
// DISBURSE_TEST_KAFKA_BROKERS (comma separated), or a Docker container's
// (see the package doc). The broker is shared: name topics and consumer
// groups with TopicPrefix.
func Kafka(tb testing.TB) []string {
	tb.Helper()
	if brokers := envBrokers(); len(brokers) > 0 {
		if err := dialAny(brokers); err != nil {
			tb.Fatalf("testenv: Kafka at %s=%s does not answer: %v (is it running? `make services-up`)",
				EnvKafkaBrokers, strings.Join(brokers, ","), err)
		}
		return brokers
	}
	if !dockerReachable() {
		missing(tb, "kafka", EnvKafkaBrokers)
	}
	brokers, err := dockerKafka()
	if err != nil {
		tb.Fatalf("testenv: kafka: %v; or run `make services-up` and set %s", err, EnvKafkaBrokers)
	}
	return brokers
}

func envBrokers() []string {
	var brokers []string
	for _, b := range strings.Split(os.Getenv(EnvKafkaBrokers), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return brokers
}

func dialAny(addrs []string) error {
	var err error
	for _, a := range addrs {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", a, 2*time.Second); err == nil {
			c.Close()
			return nil
		}
	}
	return err
}

// TopicPrefix returns a prefix unique to this test, such as
// "t-TestSettle-retries-3f9a0c1d-", for the names of the topics and
// consumer groups it creates, so that tests sharing one broker never see
// each other's records. It holds only characters legal in topic names.
//
// When the test ends, topics and groups whose names start with the prefix
// are deleted from the broker Kafka returns, if a broker is configured or
// already started; the test needs no broker to call TopicPrefix.
func TopicPrefix(tb testing.TB) string {
	tb.Helper()
	prefix := "t-" + topicSafe(tb.Name()) + "-" + randomHex(4) + "-"
	tb.Cleanup(func() { deletePrefixed(tb, prefix) })
	return prefix
}

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// topicSafe keeps a test name readable in a topic name: runs of other
// characters become one '-' (no '.' or '_', which Kafka treats as
// colliding in metric names), and the result is cut to 60 characters.
func topicSafe(name string) string {
	s := strings.Trim(unsafeTopicChars.ReplaceAllString(name, "-"), "-")
	if len(s) > 60 {
		s = strings.TrimRight(s[:60], "-")
	}
	if s == "" {
		s = "test"
	}
	return s
}

// deletePrefixed removes what a test created under its prefix, so a
// long-lived development broker does not collect thousands of topics.
func deletePrefixed(tb testing.TB, prefix string) {
	brokers := envBrokers()
	if len(brokers) == 0 && dockerReachable() {
		brokers, _ = dockerKafka() // started already if the test used Kafka
	}
	if len(brokers) == 0 || dialAny(brokers) != nil {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	if groups, err := adm.ListGroups(ctx); err == nil {
		var names []string
		for _, g := range groups.Groups() {
			if strings.HasPrefix(g, prefix) {
				names = append(names, g)
			}
		}
		if len(names) > 0 {
			if _, err := adm.DeleteGroups(ctx, names...); err != nil {
				tb.Logf("testenv: delete consumer groups %v: %v", names, err)
			}
		}
	}
	if topics, err := adm.ListTopics(ctx); err == nil {
		var names []string
		for _, t := range topics.Names() {
			if strings.HasPrefix(t, prefix) {
				names = append(names, t)
			}
		}
		if len(names) > 0 {
			if _, err := adm.DeleteTopics(ctx, names...); err != nil {
				tb.Logf("testenv: delete topics %v: %v", names, err)
			}
		}
	}
}
