// Package callbackstage is the consumer stage that turns status changes and
// completed batches into callbacks. It reads the status and batches topics
// (its own consumer group), builds the callback of every terminal status
// (COMPLETED, FAILED, REVERSED) and of every batch.completed, records them
// in Postgres with one idempotent insert per polled batch, and only then
// lets the batch's offsets be committed. Delivery is callbacks.Worker's,
// which Run starts beside the consumer.
//
// Status events come at least once and in any order across payouts; the
// callback id is derived from (disbursement id, version), so a duplicate
// event records nothing new.
package callbackstage

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// Stage records callbacks from status and batch events.
type Stage struct {
	Store  *callbacks.Store
	Worker *callbacks.Worker // woken after each recorded batch; nil: no worker here
	Kafka  *kgo.Client
	Topics events.Topics
	Log    *slog.Logger
}

// Handle records the callbacks of one polled batch.
func (s *Stage) Handle(ctx context.Context, records []*kgo.Record) error {
	var statuses []events.Status
	var batches []events.BatchCompleted
	var ids []string
	for _, r := range records {
		switch r.Topic {
		case s.Topics.Status:
			var ev events.Status
			if err := json.Unmarshal(r.Value, &ev); err != nil || ev.DisbursementID == "" {
				s.Log.Error("skipping malformed status record", "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			statuses = append(statuses, ev)
			ids = append(ids, ev.DisbursementID)
		case s.Topics.Batches:
			var ev events.BatchCompleted
			if err := json.Unmarshal(r.Value, &ev); err != nil || ev.BatchID == "" {
				s.Log.Error("skipping malformed batch record", "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			batches = append(batches, ev)
		}
	}
	payouts, err := s.Store.Payouts(ctx, ids)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var cbs []callbacks.New
	add := func(c callbacks.New) {
		if !seen[c.ID] {
			seen[c.ID] = true
			cbs = append(cbs, c)
		}
	}
	for _, ev := range statuses {
		if c, ok := callbacks.ForStatus(ev, payouts[ev.DisbursementID]); ok {
			add(c)
		}
	}
	for _, ev := range batches {
		add(callbacks.ForBatch(ev))
	}
	n, err := s.Store.Enqueue(ctx, cbs)
	if err != nil {
		return err
	}
	if n > 0 {
		s.Log.Debug("callbacks recorded", "count", n)
		if s.Worker != nil {
			s.Worker.Wake()
		}
	}
	return nil
}

// Run consumes and delivers until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var workerErr error
	if s.Worker != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workerErr = s.Worker.Run(ctx)
		}()
	}
	err := processor.Consume(ctx, "callbacks", s.Kafka, 1000, s.Log, s.Handle)
	wg.Wait()
	return errors.Join(err, workerErr)
}
