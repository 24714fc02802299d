package processor

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"
)

var consumerLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "disburse_stage_consumer_lag",
	Help: "Records in a partition after the newest one the stage has fetched (high watermark - next offset), per stage, topic and partition.",
}, []string{"stage", "topic", "partition"})

// Batching is how ConsumeBuffered gathers records: until MaxRecords are in
// hand or MaxWait has passed since the first poll, whichever comes first.
type Batching struct {
	MaxRecords int
	MaxWait    time.Duration
}

// ConsumeBuffered is Consume for stages that write in large blocks (the
// ClickHouse sink): it keeps polling until the batch is full or MaxWait
// has passed, hands the whole batch to handle, and commits the batch's
// offsets only after handle succeeded. It records the consumer lag of
// every partition it fetches from. Rebalances wait while a batch is in
// hand, as in Consume.
func ConsumeBuffered(ctx context.Context, stage string, cl *kgo.Client, b Batching, log *slog.Logger, handle Handler) error {
	for {
		var records []*kgo.Record
		deadline := time.Now().Add(b.MaxWait)
		for len(records) < b.MaxRecords && ctx.Err() == nil && time.Now().Before(deadline) {
			pollCtx, cancel := context.WithDeadline(ctx, deadline)
			fetches := cl.PollRecords(pollCtx, b.MaxRecords-len(records))
			cancel()
			fetches.EachError(func(topic string, partition int32, err error) {
				if pollCtx.Err() == nil {
					log.Warn("fetch error", "stage", stage, "topic", topic, "partition", partition, "err", err)
				}
			})
			fetches.EachPartition(func(p kgo.FetchTopicPartition) {
				if n := len(p.Records); n > 0 {
					next := p.Records[n-1].Offset + 1
					consumerLag.WithLabelValues(stage, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(p.HighWatermark - next))
				}
			})
			records = append(records, fetches.Records()...)
		}
		if len(records) == 0 {
			cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if !finishBatch(ctx, stage, cl, records, log, handle) {
			return nil
		}
	}
}
