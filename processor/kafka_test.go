package processor

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/disburse/disburse/internal/testenv"
)

// TestEnsureTopicsWith creates topics with a replication factor and
// min.insync.replicas, leaves existing ones alone, and refuses a factor the
// cluster cannot hold with an error naming the flag. The three-broker test
// (cmd/disburse, TestReplicatedKafkaBrokerKilled) creates factor 3.
func TestEnsureTopicsWith(t *testing.T) {
	brokers := testenv.Kafka(t)
	prefix := testenv.TopicPrefix(t)
	cl, err := NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	topic := prefix + "replicated"
	spec := TopicSpec{Partitions: 3, ReplicationFactor: 1, MinInsyncReplicas: 1}
	for range 2 { // the second call finds the topic and leaves it
		if err := EnsureTopicsWith(ctx, cl, spec, topic); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	md, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if d := md[topic]; len(d.Partitions) != 3 || len(d.Partitions[0].Replicas) != 1 {
		t.Errorf("topic %s: %d partitions, %d replicas; want 3 and 1", topic, len(d.Partitions), len(d.Partitions[0].Replicas))
	}
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, kv := range c.Configs {
		if kv.Key == "min.insync.replicas" {
			found = true
			if kv.MaybeValue() != "1" {
				t.Errorf("min.insync.replicas = %q, want 1", kv.MaybeValue())
			}
		}
	}
	if !found {
		t.Error("min.insync.replicas not among the topic's configs")
	}

	// The shared test broker is one node: a factor of 3 cannot be placed.
	err = EnsureTopicsWith(ctx, cl, TopicSpec{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2}, prefix+"too-many")
	if err == nil || !strings.Contains(err.Error(), "--kafka-replication-factor") {
		t.Errorf("factor 3 on one broker: %v; want an error naming --kafka-replication-factor", err)
	}
}
