package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// clientSeq numbers the Kafka clients of this process: each client's
// kprom metrics carry client_id "disburse-<n>" so that several clients in
// one process (a worker runs one per stage) register distinct series.
var clientSeq atomic.Int64

// NewClient is the one Kafka client constructor: producers wait for all
// in-sync replicas and are idempotent (franz-go's defaults, stated here so
// nobody turns them off by accident).
func NewClient(brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	if len(brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured (set --kafka-brokers or DISBURSE_KAFKA_BROKERS)")
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 on the key, like the Java client
		// franz-go's own metrics (connections, bytes, batches, records,
		// request latency per broker) on the default registry, as
		// disburse_kafka_*; closing the client unregisters them.
		kgo.ClientID("disburse-" + strconv.FormatInt(clientSeq.Add(1), 10)),
		kgo.WithHooks(kprom.NewMetrics("disburse_kafka", kprom.Registerer(prometheus.DefaultRegisterer), kprom.WithClientLabel(),
			kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Batches, kprom.Records, kprom.UncompressedBytes, kprom.ConsistentNaming),
			kprom.Histograms(kprom.RequestDurationE2E, kprom.RequestThrottled))),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// EnsureTopics creates the topics with partitions each when they are
// missing, with the broker's default replication.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, topics ...string) error {
	return EnsureTopicsWith(ctx, cl, TopicSpec{Partitions: partitions}, topics...)
}

// TopicSpec is how the service creates its topics.
type TopicSpec struct {
	Partitions int32
	// ReplicationFactor is the copies of each partition; 0 takes the
	// broker's default.replication.factor. Production: 3.
	ReplicationFactor int16
	// MinInsyncReplicas is the topic's min.insync.replicas: with acks=all
	// a write succeeds once this many replicas hold it. 0 takes the
	// broker's default. Production: 2, so one broker may be down.
	MinInsyncReplicas int
}

// EnsureTopicsWith creates the missing topics as spec says. A topic that
// already exists is left as it is (partitions and replication are the
// operator's once created), but one with fewer replicas than spec asks is
// logged, since its writes survive fewer broker losses than configured.
func EnsureTopicsWith(ctx context.Context, cl *kgo.Client, spec TopicSpec, topics ...string) error {
	adm := kadm.NewClient(cl)
	rf := spec.ReplicationFactor
	if rf == 0 {
		rf = -1
	}
	var configs map[string]*string
	if spec.MinInsyncReplicas > 0 {
		v := strconv.Itoa(spec.MinInsyncReplicas)
		configs = map[string]*string{"min.insync.replicas": &v}
	}
	resp, err := adm.CreateTopics(ctx, spec.Partitions, rf, configs, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var existing []string
	for _, t := range resp.Sorted() {
		switch {
		case errors.Is(t.Err, kerr.TopicAlreadyExists):
			existing = append(existing, t.Topic)
		case errors.Is(t.Err, kerr.InvalidReplicationFactor):
			return fmt.Errorf("create topic %s with replication factor %d: %w (the cluster has fewer brokers; lower --kafka-replication-factor)", t.Topic, spec.ReplicationFactor, t.Err)
		case t.Err != nil:
			return fmt.Errorf("create topic %s: %w", t.Topic, t.Err)
		}
	}
	if spec.ReplicationFactor > 1 && len(existing) > 0 {
		md, err := adm.ListTopics(ctx, existing...)
		if err != nil {
			return fmt.Errorf("describe topics: %w", err)
		}
		for _, d := range md.Sorted() {
			for _, p := range d.Partitions.Sorted() {
				if len(p.Replicas) < int(spec.ReplicationFactor) {
					slog.Warn("existing topic has fewer replicas than --kafka-replication-factor; reassign its partitions (docs/operations.md, Kafka)",
						"topic", d.Topic, "partition", p.Partition, "replicas", len(p.Replicas), "want", spec.ReplicationFactor)
					break
				}
			}
		}
	}
	return nil
}
