// Package ledgerstage is the consumer stage that debits payouts. It reads
// the requests topic in polled batches, applies each batch in one Postgres
// transaction through ledger.Store.ApplyDebits, then publishes a dispatch
// record for every debited payout, and only then lets the batch's offsets be
// committed. Status events are not this stage's: the debit's status changes
// are written with their event rows, and the outbox relay (processor/relay)
// publishes them.
//
// A crash between the transaction and the publish is safe: the batch comes
// again, the debit is a no-op (the payout is no longer PENDING), and the
// dispatch records are published again. The dispatch stage is idempotent on
// the disbursement id.
package ledgerstage

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// Stage debits payout requests.
type Stage struct {
	Ledger *ledger.Store
	Kafka  *kgo.Client
	Topics events.Topics
	Log    *slog.Logger
	// Gate, when set, decides which requested payouts may be debited now
	// (controls.Gate: the kill switch and velocity limits, issue 14).
	Gate Gate
}

// Gate filters a polled batch's requests before the debit and returns the
// ids the debit may take, in order.
type Gate interface {
	Admit(ctx context.Context, reqs []events.Request) ([]string, error)
}

// Handle applies one polled batch.
func (s *Stage) Handle(ctx context.Context, records []*kgo.Record) error {
	ids := make([]string, 0, len(records))
	// The API's request id per payout (record header), logged with the
	// payout and passed on to the dispatch record.
	rids := make(map[string]string, len(records))
	var reqs []events.Request // for the gate
	for _, r := range records {
		var req events.Request
		if err := json.Unmarshal(r.Value, &req); err != nil || req.DisbursementID == "" {
			s.Log.Error("skipping malformed request record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		ids = append(ids, req.DisbursementID)
		if s.Gate != nil {
			reqs = append(reqs, req)
		}
		if rid := processor.RequestIDOf(r); rid != "" {
			rids[req.DisbursementID] = rid
		}
	}
	if s.Gate != nil {
		var err error
		if ids, err = s.Gate.Admit(ctx, reqs); err != nil {
			return err
		}
	}
	out, changed, err := s.Ledger.ApplyDebits(ctx, ids)
	if err != nil {
		return err
	}
	produce := make([]*kgo.Record, 0, len(out))
	for i, d := range out {
		if d.Status == payout.Processing {
			rec := processor.JSONRecord(s.Topics.Dispatch, d.ID, events.Dispatch{
				DisbursementID: d.ID, MerchantID: d.MerchantID, Environment: d.Environment, BankCode: d.BankCode,
			})
			if rid := rids[d.ID]; rid != "" {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: processor.RequestIDHeader, Value: []byte(rid)})
			}
			produce = append(produce, rec)
		}
		if changed[i] {
			s.Log.Info("payout debited", "disbursement_id", d.ID, "request_id", rids[d.ID], "merchant_id", d.MerchantID,
				"environment", d.Environment, "status", d.Status, "amount", d.Amount, "fee", d.Fee)
		}
	}
	return processor.Produce(ctx, s.Kafka, produce...)
}

// Run consumes until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	return processor.Consume(ctx, "ledger", s.Kafka, 1000, s.Log, s.Handle)
}
