package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

// StatusEvent is the status-topic record for a payout in its current state.
func StatusEvent(topic string, d payout.Disbursement) *kgo.Record {
	ev := events.Status{
		DisbursementID: d.ID,
		MerchantID:     d.MerchantID,
		Environment:    d.Environment,
		ReferenceID:    d.ReferenceID,
		BankCode:       d.BankCode,
		Amount:         d.Amount,
		Fee:            d.Fee,
		Currency:       d.Currency,
		Status:         string(d.Status),
		Version:        d.Version,
		At:             d.UpdatedAt.UTC(),
		CreatedAt:      d.CreatedAt.UTC(),
	}
	if d.BatchID != nil {
		ev.BatchID = *d.BatchID
	}
	if d.FailureCode != nil {
		ev.FailureCode = *d.FailureCode
	}
	return WithDisbursementID(JSONRecord(topic, d.MerchantID, ev), d.ID)
}

// DisbursementIDHeader is the Kafka record header naming the payout a
// request or status record is about (records keyed by merchant), so a
// payout's records can be found without decoding their values.
const DisbursementIDHeader = "disbursement_id"

// WithDisbursementID adds the disbursement_id header to r and returns it.
func WithDisbursementID(r *kgo.Record, id string) *kgo.Record {
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: DisbursementIDHeader, Value: []byte(id)})
	return r
}

// JSONRecord encodes v as a record on topic with key.
func JSONRecord(topic, key string, v any) *kgo.Record {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // event types always encode
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b, Timestamp: time.Now()}
}

// RequestIDHeader is the Kafka record header carrying the X-Request-Id of
// the API call that produced the record.
const RequestIDHeader = "request_id"

// RequestIDOf is the request id a record carries, or "".
func RequestIDOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == RequestIDHeader {
			return string(h.Value)
		}
	}
	return ""
}

// Produce sends records and waits until every one is acknowledged.
func Produce(ctx context.Context, cl *kgo.Client, records ...*kgo.Record) error {
	if len(records) == 0 {
		return nil
	}
	if id := payout.RequestID(ctx); id != "" {
		// The API's request id travels with the records it produces
		// (header request_id) so the stages can log it with the payout.
		for _, r := range records {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: RequestIDHeader, Value: []byte(id)})
		}
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}
