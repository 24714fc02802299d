// Package sink is the consumer stage that streams events into ClickHouse
// for reports. It gathers records from its topics in large batches
// (thousands of rows or about a second, whichever first), hands each
// topic's records to that topic's Feed, and commits the offsets only after
// every feed has stored its rows.
//
// Feeds are idempotent, so a batch that comes again after a crash or a
// failed commit stores nothing twice: StatusFeed skips status events
// ClickHouse already holds (see reports.Store.InsertStatus). A topic joins
// the sink by adding a Feed for it (batch and callback events, when those
// topics exist).
package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

// Feed stores one topic's records in ClickHouse.
type Feed interface {
	// Topic is the topic the feed reads.
	Topic() string
	// Write stores the records' rows. It must be idempotent: after an
	// error or a crash the same records come again.
	Write(ctx context.Context, records []*kgo.Record) error
}

// Defaults of Stage's batching.
const (
	DefaultMaxRows = 5000
	DefaultMaxWait = time.Second
)

// Stage streams its feeds' topics into ClickHouse.
type Stage struct {
	Feeds []Feed
	Kafka *kgo.Client // consumes every feed's topic, in the sink's group
	Log   *slog.Logger
	// MaxRows and MaxWait bound a batch (DefaultMaxRows, DefaultMaxWait).
	MaxRows int
	MaxWait time.Duration
}

// Topics lists the feeds' topics, for the consumer's options.
func Topics(feeds ...Feed) []string {
	out := make([]string, len(feeds))
	for i, f := range feeds {
		out[i] = f.Topic()
	}
	return out
}

// Handle stores one batch, topic by topic.
func (s *Stage) Handle(ctx context.Context, records []*kgo.Record) error {
	byTopic := map[string][]*kgo.Record{}
	for _, r := range records {
		byTopic[r.Topic] = append(byTopic[r.Topic], r)
	}
	for _, f := range s.Feeds {
		if recs := byTopic[f.Topic()]; len(recs) > 0 {
			if err := f.Write(ctx, recs); err != nil {
				return fmt.Errorf("sink %s: %w", f.Topic(), err)
			}
		}
	}
	return nil
}

// Run consumes until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	b := processor.Batching{MaxRecords: s.MaxRows, MaxWait: s.MaxWait}
	if b.MaxRecords <= 0 {
		b.MaxRecords = DefaultMaxRows
	}
	if b.MaxWait <= 0 {
		b.MaxWait = DefaultMaxWait
	}
	return processor.ConsumeBuffered(ctx, "sink", s.Kafka, b, s.Log, s.Handle)
}

// StatusFeed stores the status topic's payout events.
type StatusFeed struct {
	Name    string // the status topic
	Reports *reports.Store
	Log     *slog.Logger
}

// Topic is the status topic.
func (f *StatusFeed) Topic() string { return f.Name }

// Write stores the events ClickHouse does not hold yet.
func (f *StatusFeed) Write(ctx context.Context, records []*kgo.Record) error {
	evs := make([]events.Status, 0, len(records))
	for _, r := range records {
		var ev events.Status
		// No disbursement id holds a line break; the look-up of stored
		// events relies on it (reports.Store.InsertStatus).
		if err := json.Unmarshal(r.Value, &ev); err != nil || ev.DisbursementID == "" || strings.ContainsRune(ev.DisbursementID, '\n') {
			f.Log.Error("skipping malformed status record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		evs = append(evs, ev)
	}
	n, err := f.Reports.InsertStatus(ctx, evs)
	if err != nil {
		return err
	}
	f.Log.Debug("status events stored", "records", len(records), "inserted", n)
	return nil
}
