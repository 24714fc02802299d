package hold

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// publishChunk is how many request records are produced per round trip.
const publishChunk = 5000

// Publisher publishes request records to the requests topic with cl, keyed
// by merchant like every create, a chunk at a time, and waits for Kafka to
// take them.
func Publisher(cl *kgo.Client, topic string) func(context.Context, []events.Request) error {
	return func(ctx context.Context, reqs []events.Request) error {
		for start := 0; start < len(reqs); start += publishChunk {
			chunk := reqs[start:min(start+publishChunk, len(reqs))]
			recs := make([]*kgo.Record, len(chunk))
			for i, req := range chunk {
				recs[i] = processor.JSONRecord(topic, req.MerchantID, req)
			}
			if err := processor.Produce(ctx, cl, recs...); err != nil {
				return err
			}
		}
		return nil
	}
}
