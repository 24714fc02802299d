package processor

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/retry"
)

var (
	batchRecords = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_stage_records_total",
		Help: "Records a stage finished and committed.",
	}, []string{"stage"})
	batchFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_stage_batch_failures_total",
		Help: "Batches a stage failed to finish and retried.",
	}, []string{"stage"})
	batchDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "disburse_stage_batch_seconds",
		Help:    "Time a stage took to finish one polled batch.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"stage"})
)

// CountFinished adds n to disburse_stage_records_total for a stage that
// commits records one by one as they finish instead of in polled batches
// (the dispatch stage).
func CountFinished(stage string, n int) { batchRecords.WithLabelValues(stage).Add(float64(n)) }

// Handler processes one polled batch. It must be idempotent: after an error
// or a crash the same records come again.
type Handler func(ctx context.Context, records []*kgo.Record) error

// ConsumerOpts are the options every stage's consumer needs: its group,
// topic, manual commits, and no rebalance while a batch is in hand.
func ConsumerOpts(group string, topics ...string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(100 * time.Millisecond),
		// A crashed instance holds its partitions until its session times
		// out; 10 s (not the 45 s default) bounds that stall for payouts.
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(2 * time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
}

// Consume polls batches of at most maxRecords and hands each to handle until
// ctx ends. A batch is committed only after handle succeeds; a failed batch
// is retried with backoff. When ctx ends the batch in hand is finished and
// committed before Consume returns (graceful shutdown).
func Consume(ctx context.Context, stage string, cl *kgo.Client, maxRecords int, log *slog.Logger, handle Handler) error {
	for {
		fetches := cl.PollRecords(ctx, maxRecords)
		if ctx.Err() != nil && fetches.NumRecords() == 0 {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if ctx.Err() == nil {
				log.Warn("fetch error", "stage", stage, "topic", topic, "partition", partition, "err", err)
			}
		})
		records := fetches.Records()
		if len(records) == 0 {
			cl.AllowRebalance()
			continue
		}
		if !finishBatch(ctx, stage, cl, records, log, handle) {
			return nil
		}
	}
}

// finishBatch hands a batch to handle until it succeeds, retrying with
// backoff, then commits its offsets and lets a waiting rebalance go on.
// It reports false when the stage is shutting down with the batch
// unfinished: the batch stays uncommitted and comes again.
func finishBatch(ctx context.Context, stage string, cl *kgo.Client, records []*kgo.Record, log *slog.Logger, handle Handler) bool {
	work := context.WithoutCancel(ctx)
	backoff := retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		err := handle(work, records)
		if err == nil {
			break
		}
		batchFailures.WithLabelValues(stage).Inc()
		log.Error("batch failed; retrying", "stage", stage, "records", len(records), "attempt", attempt+1, "err", err)
		if ctx.Err() != nil && attempt >= 2 {
			cl.AllowRebalance()
			return false
		}
		_ = backoff.Sleep(work, attempt)
	}
	batchDuration.WithLabelValues(stage).Observe(time.Since(start).Seconds())
	if err := cl.CommitRecords(work, records...); err != nil {
		// Not fatal: the batch comes again and the stage is idempotent.
		log.Warn("commit failed; the batch will be redelivered", "stage", stage, "err", err)
	} else {
		batchRecords.WithLabelValues(stage).Add(float64(len(records)))
	}
	cl.AllowRebalance()
	return true
}
