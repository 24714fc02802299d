package processor

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

// BatchCompletions returns a batch.completed record for each batch among
// the payouts that is now COMPLETED. A stage calls it after the payouts'
// changes committed; a batch may be announced more than once (redelivery,
// two last items settling at once), and consumers dedup on the batch id.
func BatchCompletions(ctx context.Context, store *batch.Store, topic string, ds []payout.Disbursement) ([]*kgo.Record, error) {
	seen := map[string]bool{}
	var out []*kgo.Record
	for _, d := range ds {
		if d.BatchID == nil || seen[*d.BatchID] || !d.Status.Terminal() {
			continue
		}
		seen[*d.BatchID] = true
		b, err := store.Get(ctx, "", "", *d.BatchID)
		if err != nil {
			return nil, fmt.Errorf("read batch %s: %w", *d.BatchID, err)
		}
		if b.Status != "COMPLETED" || b.CompletedAt == nil {
			continue
		}
		counts := make(map[string]events.BatchTotal, len(b.Counts))
		for st, c := range b.Counts {
			counts[st] = events.BatchTotal{Count: c.Count, Amount: c.Amount}
		}
		out = append(out, JSONRecord(topic, b.MerchantID, events.BatchCompleted{
			BatchID: b.ID, MerchantID: b.MerchantID, Environment: b.Environment, ReferenceID: b.ReferenceID,
			Status: b.Status, TotalCount: b.ItemCount, TotalAmount: b.TotalAmount, Currency: b.Currency,
			Counts: counts, CompletedAt: b.CompletedAt.UTC(),
		}))
	}
	return out, nil
}
